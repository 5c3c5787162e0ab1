"""Gates: observed conditions awaited with a deadline, the same for every provider.

A gate is a probe factory registered by name (kops.wait.gate): given the context and the
plan's ``Wait``, it returns a probe that returns a result when its condition holds and
raises ``NotYet(reason)`` while it does not. :func:`wait` runs it through the one poll
loop (kops.wait.until), optionally until it has held for ``settle`` seconds, checks each
round that the nodes it depends on are still running (fail fast, naming the node and
showing its log), and on a time-out raises WaitTimeout (exit 4) with the last reason and
the nodes' last log lines. Only NotYet is retried: any other exception in a probe is a bug
and surfaces as one. The Kafka and ZooKeeper gates are here; kops.connect, kops.registry
and kops.zookeeper register their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kops.kafka import health
from kops.orchestration import status
from kops.core import wait as waiting
from kops.core.errors import KopsError
from kops.kafka.health import NotYet
from kops.plan import Wait
from kops.model.topology import Topology


@dataclass
class Context:
    topo: Topology
    provider: object        # kops.providers.base.Provider
    log: object             # progress lines
    scope: str = ""         # the -i/--preset/--name words that repeat this command's target
    zk_started: float | None = None
    client: health.Client | None = None   # kops's client (with the cluster's security settings)
    timeline: list = field(default_factory=list)   # (step, start offset s, seconds) as the plan ran
    again: str | None = None   # the command that resumes after a failure (default: kops up with the scope)

    @property
    def resume(self) -> str:
        return self.again or f"kops up{self.scope}"

    def kafka(self, bootstrap: str | None = None) -> health.Client:
        base = self.client or health.Client(self.topo.bootstrap_servers)
        return base.at(bootstrap) if bootstrap else base


def _nodes_for(gate: str, topo: Topology, named: tuple[str, ...]) -> list[str]:
    if named:
        return list(named)
    if gate.startswith("zookeeper"):
        return [n.name for n in topo.zookeepers]
    if gate.startswith("connect"):
        return [n.name for n in topo.connects]
    if gate.startswith("registry"):
        return [n.name for n in topo.registries]
    return [n.name for n in topo.nodes if n.is_kafka]


def wait(ctx: Context, action: Wait, deadline: float, *, clock: waiting.Clock | None = None) -> object:
    """Wait for ``action.gate``; returns the gate's result."""
    t0 = time.monotonic()
    probe, describe_ok = waiting.factory(action.gate)(ctx, action)
    watched = [] if action.gate == "zookeeper-sessions" else _nodes_for(action.gate, ctx.topo, action.nodes)
    strategy = waiting.Strategy(
        probe, _what(action), settle=action.settle, watch=lambda: _fail_fast(ctx, watched),
        details=lambda: _tails(ctx, watched or [n.name for n in ctx.topo.nodes]),
        hint=f"raise --timeout on a slow machine, or look at the nodes' logs (kops logs NODE{ctx.scope})")
    result = waiting.until(strategy, deadline, log=ctx.log, clock=clock)
    if not action.quiet and describe_ok:
        ctx.log(describe_ok(result, time.monotonic() - t0))
    return result


def _what(action: Wait) -> str:
    return waiting.words(action.gate).split(" (")[0]


def _fail_fast(ctx: Context, names: list[str]) -> None:
    """A node the gate waits on has stopped: waiting cannot help, say so with its log."""
    if not names:
        return
    for name, (running, state) in ctx.provider.node_states(names).items():
        if not running:
            raise KopsError(f"{name} ({state}) stopped while kops waited for it",
                            details=f"--- {name}, last log lines:\n{ctx.provider.tail(name, 30)}",
                            hint=f"its last log lines are above; `kops logs {name}{ctx.scope}` shows more")


def _tails(ctx: Context, names: list[str]) -> str:
    out = []
    for name in names:
        out.append(f"--- {name}, last log lines:\n{ctx.provider.tail(name, 12)}")
    return "\n".join(out)


# -- the gates ----------------------------------------------------------------------------------

RECONNECT_GRACE = 30.0   # seconds the ZooKeeper gate waits for running brokers to reconnect


@waiting.gate("zookeeper-quorum", "the ZooKeeper ensemble to answer with one leader")
def zookeeper_quorum(ctx: Context, action: Wait):
    """One leader (or standalone) answering, and, in a ZooKeeper-mode cluster whose brokers
    run, their sessions connected again (up to RECONNECT_GRACE): a broker stopped before its
    client reconnected after a ZooKeeper restart cannot close its session, and its next
    start fails on its own registration (NodeExists) until the session expires."""
    zks = ctx.topo.zookeepers
    t0 = time.monotonic()
    brokers = [b.name for b in ctx.topo.brokers] if ctx.topo.mode == "zookeeper" and not ctx.topo.migration else []

    def probe():
        srvr = {z.name: ctx.provider.zk_srvr(z.name) or "" for z in zks}
        modes = {n: health.zk_mode(out) for n, out in srvr.items()}
        silent = [n for n, m in modes.items() if not m]
        if silent:
            raise NotYet(f"no answer yet from {', '.join(silent)}")
        if len(modes) > 1 and list(modes.values()).count("leader") != 1:
            raise NotYet(f"no single leader yet: {modes}")
        if brokers and time.monotonic() - t0 < RECONNECT_GRACE:
            conns = [health.zk_connections(out) for out in srvr.values()]
            running = sum(1 for ok, _ in ctx.provider.node_states(brokers).values() if ok) \
                if None not in conns else 0   # a node that does not report its connections: not held on
            clients = sum(max(0, c - 1) for c in conns if c is not None)   # minus srvr's own connection
            if clients < running:
                raise NotYet(f"{clients} of the {running} running brokers' ZooKeeper sessions connected again")
        return modes

    return probe, lambda modes, secs: (f"zookeeper ready in {secs:.1f} s: "
                                       + ", ".join(f"{k} {v}" for k, v in modes.items()))


@waiting.gate("zookeeper-sessions", "the ZooKeeper sessions of uncleanly stopped brokers to expire")
def zookeeper_sessions(ctx: Context, action: Wait):
    """A ZooKeeper-mode broker that died without closing its session (kill, OOM) leaves
    /brokers/ids/<id> behind until ZooKeeper expires the session; started before that,
    it exits at once ("node already exists"). Hold until the other brokers stop listing
    the id, at most the session timeout after the death (or after ZooKeeper restarted,
    which restores the sessions it had)."""
    ids = {nid for _, nid, _, _ in action.sessions}
    until = max(max(died, ctx.zk_started or 0.0) + session + 3.0
                for _, _, died, session in action.sessions)
    if until > time.time():
        ctx.log(f"{', '.join(action.nodes)} stopped without closing its ZooKeeper session: waiting up to "
                f"{until - time.time():.0f} s for the session to expire, so it can register again")

    def probe():
        if time.time() >= until:
            return True
        h = health.kafka_health(ctx.kafka(), timeout=2)
        if not h.error and h.brokers and not ids & set(h.brokers):
            return True  # the controller saw the registrations go: the sessions are gone
        raise NotYet(f"broker id(s) {sorted(ids)} still registered in ZooKeeper")

    return probe, None


@waiting.gate("kafka-ready", "Kafka to be ready (brokers registered on their addresses, a controller, "
         "partitions whole, a produce/consume round trip)")
def kafka_ready(ctx: Context, action: Wait):
    topo = ctx.topo
    want = {b.id for b in topo.brokers}
    seen = {"n": -1}

    def probe():
        h = health.kafka_health(ctx.kafka(), timeout=3)
        if h.error:
            raise NotYet(h.error)
        have = want & set(h.brokers)
        if len(have) != seen["n"] and not action.quiet:
            seen["n"] = len(have)
            ctx.log(f"brokers registered {len(have)}/{len(want)}")
        if have != want:
            raise NotYet(f"brokers registered {sorted(have)} of {sorted(want)}")
        if h.controller is None:
            raise NotYet("no active controller yet")
        if h.offline:
            raise NotYet(f"offline partitions: {', '.join(h.offline[:5])}")
        if h.under_replicated:
            raise NotYet(f"under-replicated partitions: {', '.join(h.under_replicated[:5])}")
        for b in topo.brokers:  # every broker answers on its own advertised address
            hb = health.kafka_health(ctx.kafka(topo.external_address(b)), timeout=3)
            if hb.error or not hb.brokers:
                raise NotYet(f"{b.name} does not answer on {topo.external_address(b)}"
                             + (f": {hb.error}" if hb.error else ""))
        secs = health.round_trip(ctx.kafka(), min(3, len(want)), timeout=15)
        return h, secs

    def ok(result, secs):
        h, rt = result
        ctl = f", controller {h.controller}" if topo.mode == "zookeeper" else ""
        return (f"kafka ready in {secs:.1f} s: {len(want)} broker(s) registered{ctl}, "
                f"produce/consume round trip {rt * 1000:.0f} ms")

    return probe, ok


@waiting.gate("safe-to-stop", "no partition to depend on this node for min.insync.replicas")
def safe_to_stop(ctx: Context, action: Wait):
    node = ctx.topo.node(action.nodes[0])

    def probe():
        # the user's own topics first, Kafka's internal ones (__consumer_offsets, ...) after
        blockers = sorted(health.restart_blockers(ctx.kafka(), node.id), key=lambda b: (b.startswith("__"), b))
        if blockers:
            raise NotYet(f"stopping {node.name} now would take {len(blockers)} partition(s) below "
                         f"min.insync.replicas: {', '.join(blockers[:5])}")
        return True

    return probe, None


@waiting.gate("healthy", "the whole cluster to be healthy")
def healthy(ctx: Context, action: Wait):
    def probe():
        observed = ctx.provider.observe(None)
        probes = status.collect(ctx.provider, ctx.topo, observed, ctx.topo.mode, timeout=3, client=ctx.client)
        st = status.build(ctx.topo.name, ctx.provider.name, ctx.topo.mode, ctx.topo.version, ctx.topo,
                          observed, probes, scope=ctx.scope)
        # a connector that failed is the user's to fix (status says so): no reason to hold a restart
        blocking = [p for p in st.problems if not p.startswith(status.CONNECTOR_PROBLEM)]
        if st.state != "healthy" and (blocking or st.state != "degraded"):
            raise NotYet("; ".join(blocking) or st.state)
        return st

    return probe, None
