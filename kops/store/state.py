"""What kops keeps about a cluster on the control machine: the KRaft cluster id, which
nodes `kops down` stopped, and where the cluster's inventory came from.

The id is made once per cluster name and kept, so re-rendering or re-running `up` never
hands an existing cluster a new id. A driver that finds the cluster running passes the
id it reads there (labels, meta.properties), which wins over the kept one.
"""

from __future__ import annotations

from pathlib import Path

from kops.core import paths
from kops.model.spec import ClusterSpec
from kops.model.topology import new_cluster_id


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
    import shutil

    clusters = paths.state_dir() / "clusters"
    shutil.rmtree(paths.inside(clusters, clusters / name), ignore_errors=True)   # never a folder above it


# -- who stopped what ---------------------------------------------------------------------------
# A container that exited looks the same whether `kops down` stopped it or it crashed (a
# KRaft node killed after its grace period exits 137 like an OOM kill). kops notes the
# nodes it stopped, so status can tell "stopped" from "crashed".

def _stopped_file(name: str) -> Path:
    return paths.state_dir() / "clusters" / name / "stopped"


def note_stopped(name: str, nodes: list[str]) -> None:
    path = _stopped_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    known = stopped(name) | set(nodes)
    path.write_text("".join(f"{n}\n" for n in sorted(known)))


def note_started(name: str, nodes: list[str] | None = None) -> None:
    """``nodes`` run again (None: all of them)."""
    path = _stopped_file(name)
    if not path.is_file():
        return
    left = set() if nodes is None else stopped(name) - set(nodes)
    if left:
        path.write_text("".join(f"{n}\n" for n in sorted(left)))
    else:
        path.unlink()


def stopped(name: str) -> set[str]:
    path = _stopped_file(name)
    return set(path.read_text().split()) if path.is_file() else set()


def source_of(name: str) -> str | None:
    """Where the inventory of cluster ``name`` came from when kops last changed it."""
    path = paths.state_dir() / "clusters" / name / "source"
    return path.read_text().strip() if path.is_file() else None


def note_source(name: str, source: str | None) -> None:
    if not source:
        return
    path = paths.state_dir() / "clusters" / name / "source"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source + "\n")


def ports(name: str) -> dict[str, dict[str, int]] | None:
    """The host ports picked for a ``ports: auto`` cluster (node -> kind -> port)."""
    return paths.read_json(paths.state_dir() / "clusters" / name / "ports.json", "record of the cluster's host ports",
                           {}) or None


def note_ports(name: str, picked: dict[str, dict[str, int]]) -> None:
    import json

    path = paths.state_dir() / "clusters" / name / "ports.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(picked, indent=1, sort_keys=True))
