"""What kops keeps about a cluster on the control machine: today, the KRaft cluster id.

The id is made once per cluster name and kept, so re-rendering or re-running `up` never
hands an existing cluster a new id. A driver that finds the cluster running passes the
id it reads there (labels, meta.properties), which wins over the kept one.
"""

from __future__ import annotations

from pathlib import Path

from . import paths
from .spec import ClusterSpec
from .topology import new_cluster_id


def _file(name: str) -> Path:
    return paths.state_dir() / "clusters" / name / "cluster.id"


def cluster_id(spec: ClusterSpec, found: str | None = None, *, persist: bool = True) -> str:
    """spec.kafka.cluster_id > the id found on the running cluster > the kept one > new."""
    if spec.kafka.cluster_id:
        return spec.kafka.cluster_id
    path = _file(spec.name)
    cid = found or (path.read_text().strip() if path.is_file() else None) or new_cluster_id()
    if persist and (not path.is_file() or path.read_text().strip() != cid):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(cid + "\n")
    return cid


def forget(name: str) -> None:
    """After a purge: the next cluster of this name starts fresh."""
    path = _file(name)
    if path.exists():
        path.unlink()
