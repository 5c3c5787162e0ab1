"""Providers: one per kind of target (docker, ssh), each behind kops.providers.base.Provider."""

from kops.providers.base import Log, Provider, ProviderInfo
from kops.providers.docker import DockerProvider
from kops.providers.ssh import SSHProvider

__all__ = ["Provider", "ProviderInfo", "for_spec"]


def for_spec(spec, log: Log, *, name: str | None = None, accept_new_host_keys: bool = False) -> Provider:
    """The provider of a spec's driver (Docker when only a cluster name is known)."""
    if spec is not None and spec.driver == "ssh":

        return SSHProvider(spec, log, accept_new_host_keys=accept_new_host_keys)

    return DockerProvider(spec.name if spec is not None else name, log)
