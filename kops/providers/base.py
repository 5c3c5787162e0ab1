"""What a provider is: the small interface both targets (Docker, SSH) implement.

A provider observes what exists, applies one step of a plan (its actions run
concurrently), tails a node's log and answers the few node-local probes the gates and
the status need. It holds no ordering logic, no waits and no status assembly: those are
kops.plan, kops.gates and kops.status, written once for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from kops.plan import Action, Observed, Plan
from kops.bundle.render import Bundle

Log = Callable[[str], None]


@dataclass(frozen=True)
class ProviderInfo:
    """What a provider can do; planning asks these, never the driver's name (kind's
    ProviderInfo)."""

    sees_unlisted_nodes: bool      # observes nodes the inventory no longer lists (Docker: by label)
    one_shot_jobs: bool            # runs a throwaway job beside the nodes (Docker: a container)
    keeps_previous: bool           # keeps a reconfigured node's previous config for a rollback
    handles: frozenset = field(default_factory=frozenset)   # the node action types it carries out


class Provider(Protocol):
    name: str                      # "docker" | "ssh"
    info: ProviderInfo

    def observe(self, bundle: Bundle | None) -> Observed:
        """Nodes and hosts as they are now. Docker finds them by label (no bundle needed);
        SSH reads them on the bundle's hosts and paths."""

    def preflight(self, plan: Plan, bundle: Bundle, observed: Observed) -> None:
        """Refuse (InputError, exit 2) before any change what would fail for sure: host
        ports taken, an image that cannot be had."""

    def apply(self, step: list[Action], bundle: Bundle | None) -> None:
        """Carry out one step's node actions (only kops.execute calls this); raise KopsError
        naming every failed node and showing its log."""

    def rollback(self, nodes: list[str], bundle: Bundle) -> list[str]:
        """Put back what reconfigured ``nodes`` ran before (kept until ``settle``); returns
        the nodes put back; raises KopsError naming each node it could not put back."""

    def settle(self, nodes: list[str]) -> None:
        """The reconfigured ``nodes`` are ready: drop what was kept for a rollback."""

    def node_states(self, names: list[str]) -> dict[str, tuple[bool, str]]:
        """name -> (running, state word), cheaply, for fail-fast checks during waits."""

    def remains(self) -> list[str]:
        """What is left of a cluster that has no node (an interrupted first `up`): its
        volumes and network, in words ("volume x", "network y"); [] when nothing is."""
        return []

    def read_files(self, node: str, paths: list[str]) -> dict[str, str]:
        """The current content of ``paths`` on ``node`` (running or stopped); a path that
        cannot be read is left out. For the plan's words only: never a decision."""
        return {}

    def tail(self, node: str, lines: int = 30) -> str:
        """The node's last log lines ("" when it has none)."""

    def exec(self, node: str, argv: list[str], files: dict[str, str] | None = None,
             timeout: float = 180) -> tuple[int, str]:
        """Run a one-shot command (a Kafka tool: one JVM) inside running ``node``, as the
        service user, after placing ``files`` (absolute path -> content); (exit code, output)."""

    def exec_attached(self, node: str, argv: list[str], *, tty: bool, env: dict[str, str] | None = None) -> int:
        """`kops exec` / `kops shell`: ``argv`` on running ``node`` in its environment (the
        bundle's ``env``, Kafka's tools on PATH), attached to this process's stdin, stdout
        and stderr (a TTY when ``tty``); returns the command's exit code."""

    def zk_srvr(self, node: str) -> str | None:
        """ZooKeeper's answer to ``srvr`` (None: no answer)."""

    def quorum_state(self, node: str) -> dict | None:
        """A KRaft voter's ``quorum-state`` file (None: not readable)."""

    def close(self) -> None:
        """Drop connections."""
