"""Providers: one per kind of target (docker, ssh), each behind kops.providers.base.Provider."""

from .base import Provider, for_spec

__all__ = ["Provider", "for_spec"]
