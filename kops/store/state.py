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


def forget_ports(name: str) -> None:
    """After `up --move-ports`: the cluster's host ports are the inventory's again."""
    (paths.state_dir() / "clusters" / name / "ports.json").unlink(missing_ok=True)


# -- what sticks to a cluster -------------------------------------------------------------------
# `kops up --profile fast` is a choice about the cluster, not about one command: kept here,
# the later commands of that cluster (an `up` after a `down`, an upgrade's roll) render it the
# same way. The host ports stick the same way (ports.json above).

def profile(name: str) -> str | None:
    """The profile `kops up --profile` gave the cluster, or None (the inventory's)."""
    path = paths.state_dir() / "clusters" / name / "profile"
    return (path.read_text().strip() or None) if path.is_file() else None


def note_profile(name: str, value: str | None) -> None:
    if not value:
        return
    path = paths.state_dir() / "clusters" / name / "profile"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")


def kept_source(name: str) -> tuple[str | None, str | None] | None:
    """(inventory file, preset) the cluster was last made from, as `-i`/`--preset` take them;
    None when kops keeps no source of it (or an unreadable one)."""
    src = source_of(name)
    if not src:
        return None
    from kops.model.spec import NAME_RE

    kind, _, where = src.partition(" ")
    head, sep, tail = where.rpartition(" as ")
    if sep and NAME_RE.fullmatch(tail):   # "file /x/dev.yaml as walk1": made under another name
        where = head
    if kind == "file" and where:
        return where, None
    if kind == "preset" and where:
        return None, where
    return None


# -- where kops placed each node (SSH) ----------------------------------------------------------
# Docker finds a cluster's containers by label; a host has no labels, so the SSH provider
# notes here each node it places: enough to observe, stop and remove it once the inventory no
# longer lists it (brokers or controllers scaled down, ZooKeeper retired by a migration).
# Never a secret: names, ids, the host's address and login (user, port, key *path*), the unit
# and the node's folders.

PLACED_KEYS = ("node", "role", "id", "host", "address", "user", "port", "key", "sudo", "unit", "home",
               "conf_dir", "data_dir", "log_dir", "folders", "stop_grace", "addresses")


def _placed_file(name: str) -> Path:
    return paths.state_dir() / "clusters" / name / "placed.json"


def placed(name: str) -> dict[str, dict]:
    """node -> what kops recorded when it placed that node (an empty dict: none recorded)."""
    data = paths.read_json(_placed_file(name), "record of the nodes it placed on hosts", {})
    return {n: r for n, r in data.items() if isinstance(r, dict)}


def note_placed(name: str, records: dict[str, dict]) -> None:
    """Record (or update) where ``records``' nodes are; only the known keys are kept. The
    file is rewritten only when something changed, and atomically."""
    if not records:
        return
    known = placed(name)
    merged = dict(known)
    for node, rec in records.items():
        merged[node] = {k: rec[k] for k in PLACED_KEYS if k in rec}
    if merged != known:
        _write_placed(name, merged)


def forget_placed(name: str, nodes: list[str]) -> None:
    """``nodes`` were removed from their hosts: no longer kops's to observe."""
    known = placed(name)
    left = {n: r for n, r in known.items() if n not in set(nodes)}
    if left != known:
        _write_placed(name, left)


def _write_placed(name: str, records: dict[str, dict]) -> None:
    _write_records(_placed_file(name), records)


def _write_records(path: Path, records: dict[str, dict]) -> None:
    """A per-node record (placed.json, faults.json): written whole and atomically; none left
    when there is nothing to keep."""
    import json
    import os

    if not records:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


# -- faults injected by `kops fault` ------------------------------------------------------------
# A fault (a node killed, paused, slowed, losing packets, cut off) is not a label (labels are
# fixed when a container is made) nor anything a host keeps: kops notes it here, so that
# `kops status` can say so and `kops fault heal` knows what to undo.

def _faults_file(name: str) -> Path:
    return paths.state_dir() / "clusters" / name / "faults.json"


def faults(name: str) -> dict[str, dict]:
    """node -> the fault kops injected into it and has not healed yet (kind, since, ...)."""
    data = paths.read_json(_faults_file(name), "record of the faults it injected", {})
    return {n: r for n, r in data.items() if isinstance(r, dict)}


def note_fault(name: str, node: str, record: dict) -> None:
    """``node`` now carries the fault ``record`` (JSON-able; replaces the one it had)."""
    _write_faults(name, {**faults(name), node: record})


def forget_fault(name: str, nodes: list[str] | None = None) -> None:
    """The faults of ``nodes`` (None: every node) are healed."""
    known = faults(name)
    left = {} if nodes is None else {n: r for n, r in known.items() if n not in set(nodes)}
    if left != known:
        _write_faults(name, left)


def _write_faults(name: str, records: dict[str, dict]) -> None:
    _write_records(_faults_file(name), records)
