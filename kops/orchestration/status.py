"""One status builder for both providers: observed nodes + probe results -> ClusterStatus.

:func:`build` is pure (unit-tested on recorded probe results); :func:`collect` runs the
probes (a Kafka client on the bootstrap addresses, ZooKeeper's ``srvr`` and the KRaft
voters' ``quorum-state`` through the provider). The JSON is the same for every driver.

Registrations are read from where they live, not from the brokers' cached metadata: in
ZooKeeper mode /brokers/ids and /controller from ZooKeeper itself (kops.kafka.zookeeper);
in KRaft the metadata the brokers serve is the quorum's image (fenced brokers left out)
and the controller is the quorum's leader from the voters' own files. A broker running
but not in the source is "not registered" and the cluster degraded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from kops.core.errors import KopsError
from kops.kafka import health, zookeeper
from kops.services import metrics, registry
from kops.plan import NodeObs, Observed
from kops.model.topology import ROLE_ORDER, Topology
from kops.services import connect

ZK_OK = ("leader", "follower", "standalone")
CONNECTOR_PROBLEM = "connect: connector "   # how a failed connector or task starts its problem line


@dataclass
class NodeStatus:
    name: str
    role: str
    id: int
    state: str                      # running | exited | created | missing | active | inactive ...
    addresses: dict[str, str] = field(default_factory=dict)   # host / network / containers / jmx
    health: str = ""                # leader | follower | standalone | registered | not registered ...
    healthy: bool = False
    started_at: str | None = None
    where: str = ""                 # container name or host
    metrics: dict | None = None     # figures read from the node's Prometheus endpoint (metrics on)
    fault: dict | None = None       # the fault `kops fault` injected and has not healed (see mark_faults)

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["metrics"] is None:   # metrics off: the JSON as it always was
            del d["metrics"]
        if d["fault"] is None:
            del d["fault"]
        return d


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
    security: str | None = None     # "tls" or "tls,scram-sha-512" (None: plaintext)
    connect: dict | None = None     # Kafka Connect: its workers and connectors (None: no workers)
    schema_registry: dict | None = None   # the registry: its URL and nodes (None: no registry)
    access: dict | None = None      # a SASL cluster: {users: [...], authorizer: bool, acls: N} (kops.kafka.acls)

    @property
    def exit_code(self) -> int:
        return {"healthy": 0, "degraded": 1}.get(self.state, 3)

    @property
    def controller(self) -> int | None:
        return (self.kafka or {}).get("controller")

    def as_dict(self) -> dict:
        return {"cluster": self.name, "driver": self.driver, "mode": self.mode,
                "kafka_version": self.version, "state": self.state, "problems": self.problems,
                "bootstrap_servers": self.bootstrap, "security": self.security, "kafka": self.kafka,
                "nodes": [n.as_dict() for n in self.nodes],
                **({"connect": self.connect} if self.connect is not None else {}),
                **({"schema_registry": self.schema_registry} if self.schema_registry is not None else {}),
                **({"access": self.access} if self.access is not None else {})}


@dataclass
class Probes:
    kafka: health.KafkaHealth
    zk: dict[str, str | None] = field(default_factory=dict)        # node -> srvr mode
    quorum: dict[str, dict | None] = field(default_factory=dict)   # voter -> quorum-state
    metrics: dict[str, dict] = field(default_factory=dict)         # node -> figures (kops.metrics)
    connect: dict[str, dict] = field(default_factory=dict)         # worker -> kops.connect.worker_status
    registry: dict[str, dict] = field(default_factory=dict)        # node -> kops.registry.node_status
    # ZooKeeper mode: /brokers/ids and /controller as ZooKeeper holds them (None: not read),
    # or why they could not be read
    registrations: zookeeper.Registrations | None = None
    registrations_error: str | None = None


@dataclass(frozen=True)
class View:
    """A node as the status shows it: from the topology when there is one, else observed."""

    name: str
    role: str
    id: int
    addresses: dict[str, str]


def views(topo: Topology | None, observed: Observed) -> list[View]:
    out = {}
    if topo is not None:
        for n in topo.nodes:
            out[n.name] = View(n.name, n.role, n.id, topo.addresses(n))
    for o in observed.nodes.values():
        out.setdefault(o.name, View(o.name, o.role or "?", o.id, dict(o.addresses)))
    return sorted(out.values(), key=lambda v: (ROLE_ORDER.get(v.role, 9), v.name))


def bootstrap(topo: Topology | None, observed: Observed) -> str:
    if topo is not None:
        return topo.bootstrap_servers
    return ",".join(v.addresses["host"] for v in views(None, observed)
                    if v.role in ("broker", "combined") and v.addresses.get("host"))


def mark_faults(st: ClusterStatus, faults: dict[str, dict], describe, scope: str = "") -> ClusterStatus:
    """The faults `kops fault` injected (node -> its note), on their nodes: the health starts
    with ``fault: <describe(note)>``, and each is a problem (a cluster with a fault in place
    is not healthy, even before Kafka notices it)."""
    for n in st.nodes:
        rec = faults.get(n.name)
        if rec:
            n.fault = {**rec, "words": describe(rec)}
            rest = "" if n.state == "paused" and n.health == "stopped" else n.health
            n.health = f"fault: {n.fault['words']}" + (f"; {rest}" if rest else "")
            st.problems.append(f"{n.name}: a fault is in place ({n.fault['words']}; kops fault heal {n.name}{scope})")
            if st.state == "healthy":
                st.state = "degraded"
    return st


# -- probes ---------------------------------------------------------------------------------

def collect(provider, topo: Topology | None, observed: Observed, mode: str, timeout: float = 4,
            client: health.Client | None = None) -> Probes:
    """Run every probe the status needs, in parallel."""
    vs = views(topo, observed)
    running = {n for n, o in observed.nodes.items() if o.running}
    zks = [v.name for v in vs if v.role == "zookeeper" and v.name in running]
    voters = [v.name for v in vs if v.role in ("controller", "combined") and v.name in running] \
        if mode == "kraft" else []
    brokers_up = any(v.role in ("broker", "combined") and v.name in running for v in vs)
    with ThreadPoolExecutor(max_workers=8) as pool:
        target = client.at(bootstrap(topo, observed)) if client else bootstrap(topo, observed)
        kh = pool.submit(health.kafka_health, target, timeout) if brokers_up else None
        # a migration to KRaft under way (nodes with a KRaft cluster id): brokers leave ZooKeeper
        migrating = any(o.cluster_id for o in observed.nodes.values())
        reg_future = (pool.submit(_read_registrations, _zk_addresses(vs, running))
                      if mode == "zookeeper" and brokers_up and not migrating else None)
        zk = dict(zip(zks, pool.map(lambda n: health.zk_mode(provider.zk_srvr(n) or ""), zks)))
        quorum = dict(zip(voters, pool.map(provider.quorum_state, voters)))
        scraped = pool.submit(metrics.collect, {v.name: v.addresses["metrics"] for v in vs
                                                if v.name in running and v.addresses.get("metrics")})
        kafka = kh.result() if kh else health.KafkaHealth(error="no broker is running")
        workers = {v.name: v.addresses["host"] for v in vs
                   if v.role == "connect" and v.name in running and v.addresses.get("host")}
        rest = dict(zip(workers, pool.map(lambda a: _connect().worker_status(a), workers.values())))
        regs = {v.name: v.addresses["host"] for v in vs
                if v.role == "registry" and v.name in running and v.addresses.get("host")}
        reg = dict(zip(regs, pool.map(registry.node_status, regs.values())))
    registrations, reg_error = reg_future.result() if reg_future is not None else (None, None)
    if reg_error and topo is not None and any(m in ZK_OK for m in zk.values()):
        # ZooKeeper serves but its client port is not reachable from here: its own shell in a node
        try:
            registrations, reg_error = zookeeper.registrations_by_shell(provider, topo), None
        except (zookeeper.ZkError, KopsError) as exc:
            reg_error += f"; zookeeper-shell: {exc}"
    return Probes(kafka, zk, quorum, scraped.result(), rest, reg, registrations, reg_error)


def _zk_addresses(vs: list[View], running: set[str]) -> list[str]:
    return [v.addresses["host"] for v in vs if v.role == "zookeeper" and v.name in running and v.addresses.get("host")]


def _read_registrations(addresses: list[str]) -> tuple[zookeeper.Registrations | None, str | None]:
    if not addresses:
        return None, "no ZooKeeper node is running"
    try:
        return zookeeper.registrations(addresses, timeout=2), None
    except zookeeper.ZkError as exc:
        return None, str(exc)


def _connect():

    return connect


# -- the builder ----------------------------------------------------------------------------

def kraft_leader(states: dict[str, dict | None], voter_ids: dict[str, int]) -> dict:
    """The KRaft leader as the running voters record it in ``quorum-state``: the highest
    epoch they agree on, and only while a majority of the voters runs. ``voter_ids``:
    every configured voter (name -> id); ``states``: the running ones' files."""
    read = [s for s in states.values() if s]
    if not read or len(read) != len(states):
        return {"leader": None, "voters": set(voter_ids.values()), "epoch": None, "known": False}
    known = [(s.get("leaderEpoch", -1), s.get("leaderId", -1)) for s in read if s.get("leaderId", -1) >= 0]
    ids = {v["voterId"] for s in read for v in s.get("currentVoters") or [] if "voterId" in v}
    ids = ids or set(voter_ids.values())
    if not known:
        return {"leader": None, "voters": ids, "epoch": None, "known": True}
    epoch, leader = max(known)
    majority = 2 * len(states) > len(ids)
    return {"leader": leader if majority else None, "voters": ids, "epoch": epoch, "known": True}


def _exit_words(o: NodeObs, scope: str) -> str:
    if o.state not in ("exited", "dead", "failed"):
        return ""
    oom = ", OOM-killed" if o.oom else ""
    code = f"exit code {o.exit_code}{oom}; " if o.exit_code is not None else ""
    return f" ({code}kops logs {o.name}{scope})"


def build(name: str, driver: str, mode: str, version: str, topo: Topology | None, observed: Observed,
          probes: Probes | None, *, scope: str = "") -> ClusterStatus:
    """The status of a cluster from what was observed and probed (pure)."""
    if not observed.nodes:
        return ClusterStatus(name, driver, mode, version, [], {}, "not-found",
                             [f"no nodes of cluster {name} found"])
    kh = probes.kafka if probes else health.KafkaHealth(error="not probed")
    vs = views(topo, observed)
    running_brokers = [v for v in vs if v.role in ("broker", "combined") and observed.get(v.name).running]
    problems: list[str] = []
    quorum = _kraft(mode, vs, observed, probes, kh, running_brokers, problems)
    source = _registrations_source(kh, probes, mode, vs, running_brokers, problems)
    nodes = _node_rows(vs, topo, observed, probes, kh, quorum, mode, driver, scope, problems)
    if running_brokers:
        problems += _kafka_problems(kh, mode)
    connect = _connect_summary(vs, observed, probes, problems)
    kafka = kh.as_dict()
    if source:
        kafka.update(source)
    kafka["brokers_expected"] = sum(1 for v in vs if v.role in ("broker", "combined"))
    return ClusterStatus(name, driver, mode, version, nodes, kafka, _state(observed, problems), problems,
                         bootstrap(topo, observed), security_of(topo, observed), connect,
                         _registry_summary(vs, observed, probes))


def _registrations_source(kh: health.KafkaHealth, probes: Probes | None, mode: str, vs: list[View],
                          running_brokers: list[View], problems: list[str]) -> dict:
    """ZooKeeper mode: the registered brokers and the active controller are ZooKeeper's
    /brokers/ids and /controller, not what the brokers' metadata caches say (a broker whose
    session expired keeps serving its cache). ``kh`` is changed to say so; returns what the
    JSON adds: where the registrations were read, and the brokers' metadata when it differs."""
    if mode == "kraft" and running_brokers and not kh.error:
        # the brokers' metadata is the quorum's log replayed: registered and not fenced
        return {"registrations_from": "the controller quorum's metadata, as the brokers serve it (fenced "
                                      "brokers left out)"}
    if mode != "zookeeper" or not running_brokers or probes is None:
        return {}
    reg = probes.registrations
    if reg is None:
        if not probes.registrations_error:
            return {}   # not read (a migration under way): the brokers' metadata, as before
        problems.append(f"zookeeper: the brokers' registrations (/brokers/ids) could not be read: "
                        f"{probes.registrations_error}")
        kh.registration_unknown, kh.controller = True, None   # both live in ZooKeeper: not known
        return {"registrations_from": None}
    cached = {str(k): v for k, v in sorted(kh.brokers.items())}
    known = {v.id: v.addresses.get("host", "?") for v in vs if v.role in ("broker", "combined")}
    kh.brokers = {i: kh.brokers.get(i) or known.get(i, "?") for i in reg.brokers}
    kh.controller, kh.from_zookeeper = reg.controller, True
    out = {"registrations_from": f"{reg.source} (/brokers/ids, /controller)"}
    if set(cached) != {str(i) for i in reg.brokers}:
        out["brokers_in_metadata"] = cached
    return out


def _kraft(mode: str, vs: list[View], observed: Observed, probes: Probes | None, kh: health.KafkaHealth,
           running_brokers: list[View], problems: list[str]) -> dict:
    """KRaft: the quorum as the voters' files tell it; the leader becomes the controller
    (clients are shown a random broker as "controller"); a missing leader is a problem."""
    if mode != "kraft":
        return {}
    voter_ids = {v.name: v.id for v in vs if v.role in ("controller", "combined")}
    quorum = kraft_leader(probes.quorum, voter_ids) if probes is not None and probes.quorum else {}
    kh.controller = quorum.get("leader")
    if running_brokers and kh.controller is None:
        alive = sum(1 for n in voter_ids if observed.get(n).running)
        if quorum and not quorum.get("known"):
            unread = sorted(n for n, s in (probes.quorum if probes else {}).items() if not s)
            problems.append(f"kraft: the controller quorum's leader is unknown: the quorum state of "
                            f"{', '.join(unread)} could not be read")
        else:
            problems.append(f"kraft: the controller quorum has no leader ({alive} of {len(voter_ids)} "
                            "voter(s) running)")
    return quorum


def _node_rows(vs: list[View], topo: Topology | None, observed: Observed, probes: Probes | None,
               kh: health.KafkaHealth, quorum: dict, mode: str, driver: str, scope: str,
               problems: list[str]) -> list[NodeStatus]:
    """A row per node, and a problem for each node that should run and does not, or runs unwell."""
    nodes: list[NodeStatus] = []
    inventory = {n.name for n in topo.nodes} if topo is not None else None
    any_running = any(x.running for x in observed.nodes.values())
    for v in vs:
        o = observed.get(v.name)
        words, ok = _node_health(v, o, kh, quorum, probes, mode)
        if inventory is not None and v.name not in inventory and not o.running:
            # left stopped outside the inventory (a ZooKeeper after `kops migrate --to-kraft`): not a problem
            words, ok = ("retired (migrated to KRaft)" if v.role == "zookeeper" and mode == "kraft"
                         else "stopped, not in the inventory"), True
        if not o.exists:
            problems.append(f"{v.name}: missing (in the inventory, not on the {driver} target)")
        elif not ok and (o.running or o.crashed or any_running):
            problems.append(f"{v.name}: {'crashed, ' if o.crashed else ''}{o.state}{_exit_words(o, scope)}"
                            + (f", {words}" if words and o.running else ""))
        metrics = (probes.metrics.get(v.name) if probes else None) if v.addresses.get("metrics") else None
        nodes.append(NodeStatus(v.name, v.role, v.id, o.state, v.addresses, words, ok, o.started_at, o.where,
                                metrics))
    return nodes


def _kafka_problems(kh: health.KafkaHealth, mode: str) -> list[str]:
    """What the brokers' metadata says is wrong (a running cluster)."""
    if kh.error:
        return [f"kafka: {kh.error}"]
    out = []
    if kh.controller is None and mode != "kraft" and not kh.registration_unknown:
        # KRaft: reported with the quorum
        out.append("kafka: no active controller" + (" (ZooKeeper has no /controller)" if kh.from_zookeeper else ""))
    if kh.offline:
        out.append(f"kafka: {len(kh.offline)} offline partition(s): {', '.join(kh.offline[:5])}")
    if kh.under_replicated:
        out.append(f"kafka: {len(kh.under_replicated)} under-replicated partition(s): "
                   f"{', '.join(kh.under_replicated[:5])}")
    return out


def _registry_summary(vs: list[View], observed: Observed, probes: Probes | None) -> dict | None:
    regs = [v for v in vs if v.role == "registry"]
    if not regs:
        return None
    answers = probes.registry if probes else {}
    return {"url": f"http://{regs[0].addresses['host']}{registry.API}" if regs[0].addresses.get("host") else None,
            "nodes": {v.name: {"state": observed.get(v.name).state, "rest": v.addresses.get("host"),
                               **(answers.get(v.name) or {})} for v in regs}}


def _state(observed: Observed, problems: list[str]) -> str:
    if not any(o.running for o in observed.nodes.values()):
        # stopped by `kops down` (or cleanly), or crashed: a cluster that should run is degraded
        return "degraded" if any(o.crashed for o in observed.nodes.values()) else "stopped"
    return "degraded" if problems else "healthy"


def _connect_summary(vs: list[View], observed: Observed, probes: Probes | None, problems: list[str]) -> dict | None:
    """Kafka Connect as the status shows it: each worker's state, the connectors (as any
    answering worker lists them), and a problem for each connector or task that failed."""
    workers = [v for v in vs if v.role == "connect"]
    if not workers:
        return None
    answers = (probes.connect if probes else {})
    listed = next((a["connectors"] for a in answers.values() if "connectors" in a), {})
    out = {"workers": {v.name: {"state": observed.get(v.name).state, "rest": v.addresses.get("host"),
                                **({"error": answers[v.name]["error"]} if "error" in answers.get(v.name, {}) else {})}
                       for v in workers},
           "connectors": listed}
    for name, c in listed.items():
        failed = [i for i, t in enumerate(c["tasks"]) if t == "FAILED"]
        if c["state"] == "FAILED" or failed:
            problems.append(f"{CONNECTOR_PROBLEM}{name} is {c['state']}"
                            + (f", task(s) {', '.join(map(str, failed))} FAILED" if failed else "")
                            + " (kops connect status NAME; kops connect restart NAME)")
    return out


def security_of(topo: Topology | None, observed: Observed) -> str | None:
    if topo is not None:
        sec = topo.spec.security
        return ("tls" + (f",{sec.sasl}" if sec.sasl else "")) if sec.tls else None
    return observed.meta.get("security")


def _node_health(v: View, o: NodeObs, kh: health.KafkaHealth, quorum: dict, probes: Probes | None,
                 mode: str) -> tuple[str, bool]:
    if not o.running:
        if o.crashed:
            return "crashed" + (f" (exit code {o.exit_code}{', OOM' if o.oom else ''})"
                                if o.exit_code is not None else ""), False
        return ("stopped by kops down" if o.stopped_by_kops else "stopped") if o.exists else "", False
    if v.role == "connect":
        answer = (probes.connect if probes else {}).get(v.name) or {"error": "not probed"}
        if "error" in answer:
            return f"REST not answering ({answer['error']})", False
        n = len(answer["connectors"])
        return f"REST ok, {n} connector{'s' if n != 1 else ''}", True
    if v.role == "registry":
        answer = (probes.registry if probes else {}).get(v.name) or {"error": "not probed"}
        if "error" in answer:
            return f"registry not ready ({answer['error']})", False
        n = answer["subjects"]
        return f"REST ok, {n} subject{'s' if n != 1 else ''}, {answer.get('compatibility') or '?'}", True
    if v.role == "zookeeper":
        zmode = probes.zk.get(v.name) if probes else None
        return zmode or "no answer", zmode in ZK_OK
    parts, ok = [], True
    if v.role in ("broker", "combined"):
        reg = v.id in kh.brokers
        if kh.registration_unknown:
            parts.append("registration unknown (ZooKeeper unreadable)")
        else:
            parts.append("registered" if reg else "not registered" + (" in ZooKeeper" if kh.from_zookeeper else ""))
        ok = reg and not kh.registration_unknown
    if v.role in ("controller", "combined") and quorum.get("known"):
        if kh.controller == v.id:
            parts.append("active controller")
        else:
            parts.append("voter" if v.id in quorum.get("voters", ()) else "not a voter")
        if v.role == "controller":
            ok = v.id in quorum.get("voters", ())
    elif v.role in ("controller", "combined", "broker") and mode != "kraft" and kh.controller == v.id:
        parts.append("active controller")
    return ", ".join(parts) or "running", ok
