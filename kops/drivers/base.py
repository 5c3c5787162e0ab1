"""The driver interface and the results every driver returns (same shape for docker and ssh)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class NodeStatus:
    name: str
    role: str
    id: int
    state: str                      # running | exited | created | missing | active | inactive ...
    addresses: dict[str, str] = field(default_factory=dict)   # host / network / containers
    health: str = ""                # leader | follower | standalone | registered | not registered ...
    healthy: bool = False
    started_at: str | None = None
    where: str = ""                 # container name or host

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClusterStatus:
    name: str
    driver: str
    mode: str
    version: str
    nodes: list[NodeStatus]
    kafka: dict
    state: str                      # healthy | degraded | stopped | not-found
    problems: list[str] = field(default_factory=list)
    bootstrap: str = ""

    @property
    def exit_code(self) -> int:
        return {"healthy": 0, "degraded": 1}.get(self.state, 3)

    def as_dict(self) -> dict:
        return {"cluster": self.name, "driver": self.driver, "mode": self.mode,
                "kafka_version": self.version, "state": self.state, "problems": self.problems,
                "bootstrap_servers": self.bootstrap, "kafka": self.kafka,
                "nodes": [n.as_dict() for n in self.nodes]}


@dataclass
class Action:
    node: str
    action: str       # create | recreate | start | unchanged | orphan
    reason: str = ""


@dataclass
class UpResult:
    actions: list[Action]
    status: ClusterStatus | None
    seconds: float
    changed: bool
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {"changed": self.changed, "dry_run": self.dry_run, "seconds": round(self.seconds, 1),
                "actions": [asdict(a) for a in self.actions],
                "status": self.status.as_dict() if self.status else None}


class Driver:
    """What every driver does. ``log`` receives progress lines (printed on stderr)."""

    def __init__(self, log):
        self.log = log

    def up(self, spec, *, timeout: float, dry_run: bool = False) -> UpResult:
        raise NotImplementedError

    def status(self, spec=None, name: str | None = None) -> ClusterStatus:
        raise NotImplementedError

    def down(self, spec=None, name: str | None = None, purge: bool = False) -> list[str]:
        raise NotImplementedError

    def logs(self, spec=None, name: str | None = None, node: str = "", tail: int = 100) -> str:
        raise NotImplementedError

    def restart_node(self, spec, node: str) -> None:
        raise NotImplementedError
