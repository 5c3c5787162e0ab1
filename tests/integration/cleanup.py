"""Removing a test cluster's leftovers by label (shared by the integration tests)."""

from __future__ import annotations

LABEL = "io.kops.cluster"


def remove_labelled(client, name: str) -> None:
    """Every container, volume and network labelled with cluster ``name`` (a crashed run's
    leftovers too); nothing else."""
    flt = {"label": f"{LABEL}={name}"}
    for c in client.containers.list(all=True, filters=flt, ignore_removed=True):
        c.remove(force=True, v=True)
    for v in client.volumes.list(filters=flt):
        v.remove(force=True)
    for n in client.networks.list(filters=flt):
        n.remove()
