"""The planner: pure functions from (desired bundle, observed state) to ordered typed actions.

The ordering policy of kops lives here and nowhere else:

* hosts are prepared first (Java, user, distribution; Docker: network and image);
* ZooKeeper before Kafka, except when nothing of the cluster runs: then every node starts
  at once (a broker waits for the ensemble itself) and both gates follow; fresh nodes in
  parallel;
* KRaft storage is formatted once, before a node's first start, and never again;
* changed nodes of a live cluster go one at a time, each followed by the readiness gate,
  brokers first, then controllers, the active controller very last; a broker goes down
  only when no partition would drop below min.insync.replicas (the safe-to-stop gate);
* a whole cluster stops brokers first, then controllers, then ZooKeeper, each group at once.

A plan is a list of steps; the actions of one step run concurrently, steps run in order.
Nothing here touches a provider, a clock or the network: tests feed it data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kops.core import wait as waiting
from kops.core.errors import InputError
from kops.bundle.render import Bundle, NodeBundle
from kops.services.registry import topic_names
from kops.services import registry

SETTLE = 10.0   # seconds a live cluster must stay ready after one of its nodes came back
FAST_SETTLE = 3.0   # the same for the fast profile (tests, laptops): the other gates still guard each step
ZK_TICK = 3.0   # slack after a ZooKeeper session timeout before its ephemeral nodes are gone


# -- what a provider observes --------------------------------------------------------------

@dataclass(frozen=True)
class NodeObs:
    """One node as a provider found it."""

    name: str
    role: str = ""
    id: int = 0
    exists: bool = False
    running: bool = False
    state: str = "missing"            # the provider's word: running, exited, active, failed, ...
    files: dict[str, str] | None = None   # path -> sha256 of what the node has now
    digest: str | None = None         # the definition it runs (Docker: config hash label)
    formatted: bool | None = None     # KRaft storage formatted (None: not known)
    cluster_id: str | None = None
    exit_code: int | None = None
    oom: bool = False
    crashed: bool = False             # stopped on its own (not by kops or a clean SIGTERM)
    stopped_by_kops: bool = False     # `kops down` stopped it
    finished_at: float | None = None  # epoch seconds of its last exit
    started_at: str | None = None
    stop_grace: int | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    where: str = ""                   # container name or host
    quorum: str | None = None         # a KRaft node's quorum: dynamic or static (None: not known / not KRaft)


@dataclass(frozen=True)
class Need:
    """One thing a host lacks, as data: ``kind`` says what (the provider's own words:
    network, image, registry-image; java, user, kafka, tools, registry), ``what`` which one
    (an image reference, a package), ``how`` the means (a package manager) and ``note`` why
    it is done again (an out-of-date image)."""

    kind: str
    what: str = ""
    how: str = ""
    note: str = ""

    def __str__(self) -> str:
        words = {"registry-image": "registry image", "tools": "tools:"}.get(self.kind, self.kind)
        text = f"{words} {self.what}".strip() + (f" with {self.how}" if self.how else "")
        return text + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class HostObs:
    name: str
    missing: tuple[Need, ...] = ()    # what the host lacks (a network, an image, Java, ...)


@dataclass
class Observed:
    nodes: dict[str, NodeObs] = field(default_factory=dict)
    hosts: dict[str, HostObs] = field(default_factory=dict)
    controller: int | None = None     # the active controller's id, when the cluster answers
    meta: dict[str, str] = field(default_factory=dict)   # what the target records (mode, version)

    def get(self, name: str) -> NodeObs:
        return self.nodes.get(name) or NodeObs(name)


# -- actions ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    kind = "action"
    node: str | None = None
    host: str | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        d = {"kind": self.kind, **{k: v for k, v in asdict(self).items() if v not in (None, (), "")}}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def describe(self) -> str:
        target = self.node or self.host or ""
        if self.node and self.host and self.host != "docker":
            target += f" on {self.host}"
        return f"{self.kind} {target}".strip() + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class PrepareHost(Action):
    kind = "prepare"
    needs: tuple[Need, ...] = ()

    def as_dict(self) -> dict:
        return {**super().as_dict(), "needs": [str(n) for n in self.needs]}

    def wants(self, kind: str) -> list[Need]:
        return [n for n in self.needs if n.kind == kind]


class ClusterAction(Action):
    """An action kops carries out on Kafka itself (the Admin API, a Kafka tool run in a
    node), not a provider: the executor calls its ``execute``. Every subclass is a frozen
    dataclass like the node actions."""

    cluster_level = True

    def execute(self, ctx, bundle, deadline: float) -> None:   # pragma: no cover - abstract
        raise NotImplementedError(type(self).__name__)


@dataclass(frozen=True)
class Format(Action):
    kind = "format"
    cluster_id: str = ""
    join: bool = False      # a dynamic quorum's controller joining it (formatted with no initial voters)


@dataclass(frozen=True)
class Bootstrap(Action):
    """ZooKeeper mode with SASL: kops's (and the brokers') SCRAM user written to ZooKeeper
    before any broker starts (KRaft gets it from the storage format instead)."""

    kind = "bootstrap"


@dataclass(frozen=True)
class Create(Action):
    kind = "create"


@dataclass(frozen=True)
class Reconfigure(Action):
    """New files or definition for an existing node, and a start onto them (Docker: the
    container is recreated on its data volume; SSH: files rewritten, unit restarted)."""

    kind = "reconfigure"
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Start(Action):
    kind = "start"


@dataclass(frozen=True)
class Restart(Action):
    kind = "restart"
    grace: int = 30


@dataclass(frozen=True)
class Stop(Action):
    kind = "stop"
    grace: int = 30


@dataclass(frozen=True)
class Remove(Action):
    """Purge: the node's container and data volume, or its unit, files, data and logs."""

    kind = "remove"


@dataclass(frozen=True)
class RemoveHost(Action):
    """Purge: what the cluster has on a host besides its nodes (network; folders, distribution)."""

    kind = "remove-host"


@dataclass(frozen=True)
class StorageTopics(ClusterAction):
    """The schema registry's journal and snapshot topics, created by kops before its first
    start (kept forever: they are the registry's only copy); existing topics are left as
    they are. Kops does it through the Admin API (kops.registry), not a provider."""

    kind = "topics"
    topics: tuple[str, ...] = ()

    def describe(self) -> str:
        return (f"create the schema registry's topics {', '.join(self.topics)} where missing (1 partition, "
                "replication factor min(3, brokers), retention forever)")

    def execute(self, ctx, bundle, deadline: float) -> None:

        registry.ensure_topics(ctx, deadline)


@dataclass(frozen=True)
class Wait(Action):
    """A gate: an observed condition awaited with a deadline (see kops.gates)."""

    kind = "wait"
    gate: str = ""
    nodes: tuple[str, ...] = ()
    settle: float = 0.0
    quiet: bool = False
    # zookeeper-sessions: (node, broker id, died at (epoch s), session timeout s)
    sessions: tuple[tuple[str, int, float, float], ...] = ()

    def describe(self) -> str:
        what = waiting.words(self.gate)
        on = f" ({', '.join(self.nodes)})" if self.nodes else ""
        settle = f", steady for {self.settle:.0f} s" if self.settle else ""
        return f"wait for {what}{on}{settle}"


NODE_CHANGES = ("create", "reconfigure", "start")


@dataclass
class Plan:
    steps: list[list[Action]] = field(default_factory=list)
    summary: dict[str, tuple[str, str]] = field(default_factory=dict)   # node -> (action, reason)

    def add(self, *actions: Action) -> None:
        if actions:
            self.steps.append(list(actions))

    @property
    def actions(self) -> list[Action]:
        return [a for step in self.steps for a in step]

    @property
    def changes(self) -> bool:
        return any(not isinstance(a, Wait) for a in self.actions)

    def of(self, kind: str) -> list[Action]:
        return [a for a in self.actions if a.kind == kind]

    def as_dict(self) -> dict:
        return {"nodes": [{"node": n, "action": a, "reason": r} for n, (a, r) in self.summary.items()],
                "steps": [[a.as_dict() for a in step] for step in self.steps]}

    def lines(self) -> list[str]:
        out = []
        for i, step in enumerate(self.steps, 1):
            if len(step) == 1:
                out.append(f"{i:>2}. {step[0].describe()}")
            else:
                out.append(f"{i:>2}. at once:")
                out += [f"      - {a.describe()}" for a in step]
        return out


# -- up -------------------------------------------------------------------------------------

def node_action(nb: NodeBundle, obs: NodeObs) -> tuple[str, str, tuple[str, ...]]:
    """(action, reason, changed files) for one node."""
    if not obs.exists:
        return "create", "new node", ()
    changed: tuple[str, ...] = ()
    if obs.files is not None:
        changed = tuple(p.rsplit("/", 1)[-1] for p in nb.changed_files(obs.files))
    definition = obs.digest is not None and obs.digest != nb.digest
    if changed or definition:
        what = ", ".join(changed) if changed else "image, command line or ports"
        return "reconfigure", f"rendered {what} changed; data kept", changed
    if not obs.running:
        return "start", f"{obs.state}" + (f" (exit code {obs.exit_code})" if obs.exit_code not in (None, 0) else ""), ()
    return "unchanged", "running, config unchanged", ()


def _session_s(nb: NodeBundle) -> float:
    """The broker's ZooKeeper session timeout in seconds (Kafka's default: 18 s)."""
    try:
        return float(nb.node.config.get("zookeeper.session.timeout.ms", 18000)) / 1000
    except (TypeError, ValueError):
        return 18.0


def _rank(nb: NodeBundle, controller: int | None) -> tuple:
    """Rolling order: brokers, then controllers, the active controller very last."""
    n = nb.node
    return (n.is_controller, n.id == controller, n.id)


def plan_up(bundle: Bundle, observed: Observed) -> Plan:
    topo = bundle.topo
    plan = Plan()
    decided: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for nb in bundle:
        decided[nb.name] = node_action(nb, observed.get(nb.name))
        plan.summary[nb.name] = decided[nb.name][:2]
    for name in sorted(set(observed.nodes) - set(bundle.nodes)):
        plan.summary[name] = ("orphan", "not in the inventory: left alone (kops down --purge removes the "
                                        "whole cluster)")
    todo = [nb for nb in bundle if decided[nb.name][0] in NODE_CHANGES]
    if not todo:
        return plan
    _refuse_moved_zookeeper(bundle, observed, plan, todo, _actor(decided))
    act = _actor(decided)
    _prepare_hosts(plan, todo, observed)
    zks = [nb for nb in todo if nb.node.role == "zookeeper"]
    kafka = [nb for nb in todo if nb.node.is_kafka]
    if _cold_start_together(topo, bundle, zks, kafka, observed):
        # Nothing of the cluster runs: ZooKeeper and the brokers start at once (a broker
        # waits for the ensemble by itself, zookeeper.connection.timeout.ms), then both gates.
        plan.add(*[act(nb) for nb in zks + kafka])
        plan.add(Wait(gate="zookeeper-quorum"))
        plan.add(Wait(gate="kafka-ready"))
    else:
        if zks:
            _converge_group(plan, zks, [nb for nb in bundle if nb.node.role == "zookeeper"], decided, observed,
                            act, gate="zookeeper-quorum", settle=0.0, order=lambda nb: nb.node.id)
        if kafka:
            _plan_kafka(plan, bundle, kafka, decided, observed, act)
    _plan_services(plan, bundle, todo, decided, observed, act)
    return plan


def moved_zookeepers(bundle: Bundle, observed: Observed) -> list[tuple[str, str, str]]:
    """(node, address now, address in the inventory) of each running ZooKeeper whose client
    address would change while a Kafka node that dials it runs. Known where the provider
    reports a node's addresses (Docker: its labels); the SSH provider reports none."""
    if not any(observed.get(nb.name).running for nb in bundle if nb.node.is_kafka):
        return []
    out = []
    for nb in bundle:
        o = observed.get(nb.name)
        if nb.node.role != "zookeeper" or not o.running or not o.addresses.get("network"):
            continue
        now, new = o.addresses["network"], f"{nb.node.hostname}:{nb.node.ports['client']}"
        if now.rsplit(":", 1)[-1] != new.rsplit(":", 1)[-1]:
            out.append((nb.name, now, new))
    return out


def _refuse_moved_zookeeper(bundle: Bundle, observed: Observed, plan: Plan, todo: list[NodeBundle], act) -> None:
    """A ZooKeeper address change on a live cluster cannot be rolled: a ZooKeeper moved
    first strands every running broker (their zookeeper.connect names the old address, and
    their sessions expire), a broker moved first dials a ZooKeeper that is not there yet.
    Refused before anything changes, with the way that works: the cluster stopped (data
    kept) and started again, every node at once on the new addresses."""
    moved = moved_zookeepers(bundle, observed)
    if not moved:
        return
    kafka = sorted(nb.name for nb in bundle if nb.node.is_kafka and observed.get(nb.name).running)
    would = [f"{a.describe()}" for a in map(act, todo)]
    raise InputError(
        "a ZooKeeper client address changes on a running cluster: "
        + "; ".join(f"{n} {old} -> {new}" for n, old, new in moved)
        + f". The running broker(s) {', '.join(kafka)} dial the old address: moving ZooKeeper under them "
          "strands them (their sessions expire, the roll cannot finish); nothing was changed",
        details="it would have run:\n" + "\n".join(f"  - {w}" for w in would),
        hint="stop the cluster (`kops down`, data kept), then `kops up` (same -i/--name): every node starts "
             "at once on the new addresses; or keep zookeeper.client_port as it was")


def _actor(decided: dict):
    """The action of a node whose decision is create, reconfigure or start."""
    def act(nb: NodeBundle) -> Action:
        kind, reason, changed = decided[nb.name]
        if kind == "create":
            return Create(node=nb.name, host=nb.node.host_key, reason=reason)
        if kind == "reconfigure":
            return Reconfigure(node=nb.name, host=nb.node.host_key, reason=reason, changed=changed)
        return Start(node=nb.name, host=nb.node.host_key, reason=reason)
    return act


def _prepare_hosts(plan: Plan, todo: list[NodeBundle], observed: Observed) -> None:
    hosts = sorted({nb.node.host_key for nb in todo})
    plan.add(*[PrepareHost(host=h, needs=observed.hosts[h].missing,
                           reason="; ".join(map(str, observed.hosts[h].missing)))
               for h in hosts if h in observed.hosts and observed.hosts[h].missing])


def _plan_kafka(plan: Plan, bundle: Bundle, kafka: list[NodeBundle], decided: dict, observed: Observed,
                act) -> None:
    """Kafka's nodes of a cluster that is (partly) running: the SCRAM user first (ZooKeeper
    mode), old sessions expired, KRaft storage formatted, then the group converged."""
    topo = bundle.topo
    creates = any(decided[nb.name][0] == "create" for nb in kafka)
    if topo.mode == "zookeeper" and topo.spec.security.sasl and creates:
        zk = next(nb for nb in bundle if nb.node.role == "zookeeper")
        plan.add(Bootstrap(node=zk.name, host=zk.node.host_key,
                           reason=f"the brokers' {topo.spec.security.mechanism} user, written to ZooKeeper"))
    if topo.mode == "zookeeper":
        sessions = tuple((nb.name, nb.node.id, o.finished_at, _session_s(nb)) for nb in kafka
                         if (o := observed.get(nb.name)).exists and o.crashed and o.finished_at is not None)
        if sessions:
            plan.add(Wait(gate="zookeeper-sessions", nodes=tuple(s[0] for s in sessions), sessions=sessions))
    _plan_formats(plan, bundle, kafka, observed)
    _converge_group(plan, kafka, [nb for nb in bundle if nb.node.is_kafka], decided, observed, act,
                    gate="kafka-ready", settle=FAST_SETTLE if topo.spec.profile == "fast" else SETTLE,
                    order=lambda nb: _rank(nb, observed.controller))


def _plan_formats(plan: Plan, bundle: Bundle, kafka: list[NodeBundle], observed: Observed) -> None:
    """KRaft storage formatted once, before a node's first start; a new controller of a
    dynamic quorum that has controllers already joins it (an observer, then added)."""
    topo = bundle.topo
    formats = [nb for nb in kafka if nb.format_argv is not None
               and (not observed.get(nb.name).exists or observed.get(nb.name).formatted is False)]
    quorum_exists = topo.quorum == "dynamic" and any(
        observed.get(nb.name).exists and observed.get(nb.name).formatted for nb in bundle if nb.node.is_controller)
    plan.add(*[Format(node=nb.name, host=nb.node.host_key, cluster_id=topo.cluster_id,
                      join=quorum_exists and nb.node.is_controller,
                      reason="KRaft storage not formatted yet" + (": joins the quorum as an observer"
                                                                  if quorum_exists and nb.node.is_controller else ""))
               for nb in formats])


def _plan_services(plan: Plan, bundle: Bundle, todo: list[NodeBundle], decided: dict, observed: Observed,
                   act) -> None:
    """Connect workers and the schema registry last: after Kafka is ready (their groups and
    topics live in it); the registry's topics are made before its first start. When neither
    group runs yet, both start at once (they do not need each other)."""
    workers = [nb for nb in todo if nb.node.role == "connect"]
    registries = [nb for nb in todo if nb.node.role == "registry"]

    def live(role):
        return any(observed.get(nb.name).running for nb in bundle if nb.node.role == role)

    def topics():
        if any(decided[nb.name][0] == "create" for nb in registries):
            plan.add(StorageTopics(topics=topic_names(bundle.topo.spec), reason="the schema registry's storage"))

    if workers and registries and not live("connect") and not live("registry"):
        topics()
        plan.add(*[act(nb) for nb in workers + registries])
        plan.add(Wait(gate="connect-ready"))
        plan.add(Wait(gate="registry-ready"))
        return
    if workers:
        _converge_group(plan, workers, [nb for nb in bundle if nb.node.role == "connect"], decided, observed,
                        act, gate="connect-ready", settle=0.0, order=lambda nb: nb.node.id)
    if registries:
        topics()
        _converge_group(plan, registries, [nb for nb in bundle if nb.node.role == "registry"], decided,
                        observed, act, gate="registry-ready", settle=0.0, order=lambda nb: nb.node.id)


def _cold_start_together(topo, bundle: Bundle, zks: list[NodeBundle], kafka: list[NodeBundle],
                         observed: Observed) -> bool:
    """ZooKeeper mode, every node of the cluster to start and none running, no broker that
    crashed (its old session must expire first), no SCRAM user to write to ZooKeeper first."""
    if topo.mode != "zookeeper" or not zks or not kafka or topo.spec.security.sasl:
        return False
    if len(zks) + len(kafka) != sum(1 for nb in bundle if nb.node.role not in ("connect", "registry")):
        return False
    return not any(observed.get(nb.name).running or observed.get(nb.name).crashed for nb in bundle)


def _converge_group(plan: Plan, todo: list[NodeBundle], group: list[NodeBundle], decided: dict,
                    observed: Observed, act, *, gate: str, settle: float, order) -> None:
    """One group of nodes (ZooKeeper, or Kafka). Nothing of the group runs: everything at
    once. Otherwise the group is serving: nodes that are not running (new, stopped, or
    stopped with new files) start first and are awaited; then the running nodes whose
    files changed go one at a time, each awaited before the next goes down."""
    live = any(observed.get(nb.name).running for nb in group)
    if not live:
        plan.add(*[act(nb) for nb in todo])
        plan.add(Wait(gate=gate))
        return
    rolling = sorted((nb for nb in todo if decided[nb.name][0] == "reconfigure" and observed.get(nb.name).running),
                     key=order)
    fresh = [nb for nb in todo if nb not in rolling]
    if fresh:
        plan.add(*[act(nb) for nb in fresh])
        if rolling:
            plan.add(Wait(gate=gate, settle=settle, quiet=True, nodes=tuple(nb.name for nb in fresh)))
    for i, nb in enumerate(rolling):
        if gate == "kafka-ready" and nb.node.is_broker:
            # the min.insync guard of a rolling restart: never take a partition below it
            plan.add(Wait(gate="safe-to-stop", nodes=(nb.name,)))
        plan.add(act(nb))
        if i < len(rolling) - 1:
            plan.add(Wait(gate=gate, settle=settle, quiet=True, nodes=(nb.name,)))
    plan.add(Wait(gate=gate, settle=settle))


# -- down -----------------------------------------------------------------------------------

STOP_ORDER = {"registry": -1, "connect": -1, "broker": 0, "combined": 0, "controller": 1, "zookeeper": 2}


def plan_down(observed: Observed, *, purge: bool = False) -> Plan:
    """Brokers, then controllers, then ZooKeeper; the nodes of a group stop together: a
    KRaft broker's controlled shutdown needs the quorum, which stopping one by one would
    take away from the last ones. ``purge`` then removes every node and the hosts' rest."""
    plan = Plan()
    groups: dict[int, list[NodeObs]] = {}
    for o in observed.nodes.values():
        groups.setdefault(STOP_ORDER.get(o.role, 0), []).append(o)
    for rank in sorted(groups):
        running = sorted((o for o in groups[rank] if o.running), key=lambda o: o.name)
        plan.add(*[Stop(node=o.name, host=o.where or None, grace=o.stop_grace or 30,
                        reason="graceful stop, then SIGKILL") for o in running])
        for o in running:
            plan.summary[o.name] = ("stop", f"{o.state}; data kept" if not purge else o.state)
    for o in observed.nodes.values():
        plan.summary.setdefault(o.name, ("unchanged", f"already {o.state}"))
    if purge:
        plan.add(*[Remove(node=o.name, host=o.where or None, reason="container/unit, data and logs")
                   for o in sorted(observed.nodes.values(), key=lambda o: o.name) if o.exists])
        plan.add(*[RemoveHost(host=h, reason="; ".join(map(str, ho.missing)) or "the cluster's remains")
                   for h, ho in sorted(observed.hosts.items())])
        for o in observed.nodes.values():
            plan.summary[o.name] = ("remove", "container/unit, data and logs removed")
    return plan


# -- rolling restart --------------------------------------------------------------------------

def plan_restart(nodes: list[NodeObs], controller: int | None, only: list[str] | None = None, *,
                 settle: float = 3.0) -> Plan:
    """Restart Kafka nodes (or the named ones, ZooKeeper included) one at a time: brokers
    first, then controllers, the active controller last; ZooKeeper first when named. Each
    broker waits until stopping it keeps every partition at min.insync.replicas; after each
    node, the whole cluster must be healthy again. ``nodes`` as observed: each action
    carries the node's host (or container) and stop grace, nothing is looked up later."""
    plan = Plan()
    picked = [o for o in nodes if (o.name in only if only else o.role not in ("zookeeper", "connect", "registry"))]

    def rank(o: NodeObs):
        return (o.role != "zookeeper", o.role in ("controller", "combined"), o.id == controller
                and o.role != "zookeeper", o.name)

    for o in sorted(picked, key=rank):
        if o.role in ("broker", "combined"):
            plan.add(Wait(gate="safe-to-stop", nodes=(o.name,)))
        plan.add(Restart(node=o.name, host=o.where or None, grace=o.stop_grace or 30, reason="rolling restart"))
        plan.add(Wait(gate="healthy", nodes=(o.name,), settle=settle, quiet=True))
        plan.summary[o.name] = ("restart", "rolling restart")
    return plan
