"""The planner as data: observed state in, ordered actions out (no Docker, no SSH, no JVM).

What is proven here, for both drivers (Docker presets and the SSH presets, whose nodes
live on hosts vm1..vm3):

* ``plan_up`` on a table of observed states: a fresh cluster is prepared, ZooKeeper is
  created and awaited before Kafka, KRaft storage is formatted before the first start and
  only for nodes that never had it, fresh nodes go in one step, and a final kafka-ready
  wait closes the plan (steady for ``SETTLE`` seconds when the cluster was serving);
  nothing to do means no step at all; a stopped node is started, a changed node is
  reconfigured, one at a time on a live cluster (a broker after the min.insync guard) with
  a readiness gate after each (the final wait serves as the last node's gate), brokers
  before controllers and the active
  controller last; orphans are reported, never touched;
  a crashed ZooKeeper-mode broker waits for its session to expire before it starts.
* the summary, the dry-run shape (``as_dict`` is JSON, ``lines`` are numbered).
* ``plan_down``: brokers, then controllers, then ZooKeeper, each group at once, only the
  running nodes, with each node's grace; ``purge`` removes every node and then the hosts.
* ``plan_restart``: brokers, controllers, the active controller last, ZooKeeper only when
  named (and then first), a safe-to-stop gate before brokers, a healthy gate after each.

Plans are compared with :func:`shape`: one list per step, one ``(kind, node or host)``
tuple per action (a wait: ``("wait", gate, nodes, settle)``). Actions of one step run
concurrently, so a step is compared as a sorted list; the order of steps is exact.
"""

from __future__ import annotations

import json

import pytest

from kops.model import inventory, topology
from kops import plan
from kops.bundle import render
from kops.plan import Format, HostObs, Need, NodeObs, Observed, PrepareHost, Reconfigure, Stop, Wait, plan_down, plan_restart, plan_up

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
SETTLE = plan.SETTLE
FINISHED = 1_700_000_000.0      # when a crashed node exited (epoch seconds)
OLD = "0" * 64                  # a sha256 / digest that no rendered file has


# -- building bundles and observed states ----------------------------------------------------

_BUNDLES: dict[str, render.Bundle] = {}


def bundle_of(preset: str) -> render.Bundle:
    if preset not in _BUNDLES:
        _BUNDLES[preset] = render.build(topology.build(inventory.load(preset=preset), CLUSTER_ID))
    return _BUNDLES[preset]


def main_config(nb: render.NodeBundle) -> str:
    """The path of the node's main config file (zoo.cfg or server.properties)."""
    name = "zoo.cfg" if nb.node.role == "zookeeper" else "server.properties"
    return next(p for p in nb.sums if p.endswith("/" + name))


def node_obs(nb: render.NodeBundle, driver: str, state: str) -> NodeObs:
    """One node as a provider of ``driver`` would report it, in one of these states:

    ok           exists, running, files and definition as rendered
    stopped      exists, stopped cleanly (exit code 0 / inactive)
    crashed      exists, died on its own (exit code 137 at FINISHED)
    conf         running, its main config file differs from the rendered one
    image        running, files equal, the definition (image, command line) differs
    image-down   stopped, files equal, the definition differs
    unformatted  exists (created, never started), KRaft storage not formatted
    """
    docker = driver == "docker"
    kw = dict(name=nb.name, role=nb.node.role, id=nb.node.id, exists=True, running=True,
              state="running" if docker else "active", files=dict(nb.sums),
              digest=nb.digest if docker else None,   # the SSH provider reads files only
              formatted=True if nb.format_argv is not None else None,
              stop_grace=nb.stop_grace, where=nb.container["name"] if docker else nb.node.host_key)
    if state == "ok":
        pass
    elif state == "stopped":
        kw.update(running=False, state="exited" if docker else "inactive", exit_code=0 if docker else None)
    elif state == "crashed":
        kw.update(running=False, state="exited" if docker else "failed", exit_code=137, crashed=True,
                  finished_at=FINISHED)
    elif state == "conf":
        kw["files"][main_config(nb)] = OLD
        kw["digest"] = OLD if docker else None
    elif state == "image":
        kw["digest"] = OLD
    elif state == "image-down":
        kw.update(digest=OLD, running=False, state="exited", exit_code=0)
    elif state == "unformatted":
        kw.update(running=False, state="created" if docker else "inactive", formatted=False)
    else:  # pragma: no cover - a typo in the table
        raise ValueError(state)
    return NodeObs(**kw)


def need_of(words: str) -> Need:
    """A need as the providers make it, from its words ("network kops-x", "user kafka")."""
    kind, _, what = words.partition(" ")
    return Need(kind, what)


def observe(preset: str, states: dict[str, str], *, controller: int | None = None,
            missing: dict[str, tuple[str, ...]] | None = None, orphans: tuple[str, ...] = ()) -> Observed:
    """Observed state of a preset's cluster. ``states``: node -> state word (see node_obs);
    the key ``"*"`` applies to every node not named; nodes without a state are absent.
    ``missing``: host -> what it lacks (every host of the cluster is observed)."""
    b = bundle_of(preset)
    nodes = {}
    for nb in b:
        st = states.get(nb.name, states.get("*"))
        if st is not None:
            nodes[nb.name] = node_obs(nb, b.driver, st)
    for name in orphans:
        nodes[name] = NodeObs(name, "broker", 99, exists=True, running=True, state="running")
    hosts = {h: HostObs(h, tuple(need_of(w) for w in (missing or {}).get(h, ())))
             for h in sorted({nb.node.host_key for nb in b})}
    return Observed(nodes=nodes, hosts=hosts, controller=controller)


# -- comparing plans -------------------------------------------------------------------------

def _t(a) -> tuple:
    if isinstance(a, Wait):
        return ("wait", a.gate, a.nodes, a.settle)
    return (a.kind, a.node or a.host)


def shape(p: plan.Plan) -> list[list[tuple]]:
    return [sorted(_t(a) for a in step) for step in p.steps]


def C(*nodes):
    return [("create", n) for n in nodes]


def F(*nodes):
    return [("format", n) for n in nodes]


def S(*nodes):
    return [("start", n) for n in nodes]


def R(*nodes):
    return [("reconfigure", n) for n in nodes]


def P(*hosts):
    return [("prepare", h) for h in hosts]


ZKQ = [("wait", "zookeeper-quorum", (), 0.0)]
READY = [("wait", "kafka-ready", (), 0.0)]             # after a cold start: nothing was serving
READY_LIVE = [("wait", "kafka-ready", (), SETTLE)]     # the cluster was serving: stay ready SETTLE s


def ready(node):
    """The gate after one node of a live roll (the last rolled node has none of its own: the
    final READY_LIVE, which watches every node and settles as long, follows it directly)."""
    return [("wait", "kafka-ready", (node,), SETTLE)]


def zkq(node):
    """The quorum gate after one ZooKeeper member of a live roll."""
    return [("wait", "zookeeper-quorum", (node,), 0.0)]


def safe(node):
    """The min.insync guard before a broker of a live roll goes down."""
    return [("wait", "safe-to-stop", (node,), 0.0)]


def sessions(*nodes):
    return [("wait", "zookeeper-sessions", tuple(nodes), 0.0)]


def steps(*groups) -> list[list[tuple]]:
    return [sorted(g) for g in groups]


ZK3K3 = "zk-multiple-kafka-multiple"
ZK1K3 = "zk-single-kafka-multiple"
ZK3K1 = "zk-multiple-kafka-single"
ZK1K1 = "zk-single-kafka-single"
KR1 = "kraft-single"
KR3 = "kraft-multiple"
SPLIT = "kraft-split"
SSHZK = "ssh-zk-three-hosts"
SSHKR = "ssh-kraft-three-hosts"
K123 = ("kafka1", "kafka2", "kafka3")
Z123 = ("zoo1", "zoo2", "zoo3")
C123 = ("controller1", "controller2", "controller3")
JAVA = ("java openjdk-17-jre-headless with apt", "user kafka", "kafka 3.9.2 in /opt/kops/kafka_2.13-3.9.2")

# -- plan_up: the table ------------------------------------------------------------------------

UP_TABLE = [
    # fresh clusters: prepare; ZooKeeper mode: every node at once, the quorum, then Kafka;
    # KRaft: formats, creates in one step, wait
    pytest.param(ZK1K1, {}, {}, steps(C("zoo1", "kafka1"), ZKQ, READY), id="fresh-zk1-kafka1"),
    pytest.param(ZK1K1, {}, {"missing": {"docker": ("network kops-zk-single-kafka-single",
                                                    "image kops/kafka:3.9.2")}},
                 steps(P("docker"), C("zoo1", "kafka1"), ZKQ, READY), id="fresh-docker-prepare-engine"),
    pytest.param(ZK1K3, {}, {}, steps(C("zoo1", *K123), ZKQ, READY), id="fresh-zk1-kafka3"),
    pytest.param(ZK3K1, {}, {}, steps(C(*Z123, "kafka1"), ZKQ, READY), id="fresh-zk3-kafka1"),
    pytest.param(ZK3K3, {}, {}, steps(C(*Z123, *K123), ZKQ, READY), id="fresh-zk3-kafka3"),
    pytest.param(KR1, {}, {}, steps(F("kafka1"), C("kafka1"), READY), id="fresh-kraft-single"),
    pytest.param(KR3, {}, {}, steps(F(*K123), C(*K123), READY), id="fresh-kraft-combined"),
    pytest.param(SPLIT, {}, {}, steps(F(*C123, *K123), C(*C123, *K123), READY), id="fresh-kraft-split"),
    pytest.param(SSHZK, {}, {"missing": {"vm1": JAVA, "vm2": JAVA, "vm3": JAVA}},
                 steps(P("vm1", "vm2", "vm3"), C(*Z123, *K123), ZKQ, READY), id="fresh-ssh-zk-prepare-3-hosts"),
    pytest.param(SSHKR, {}, {"missing": {"vm1": JAVA, "vm2": JAVA, "vm3": JAVA}},
                 steps(P("vm1", "vm2", "vm3"), F(*K123), C(*K123), READY), id="fresh-ssh-kraft-prepare-3-hosts"),
    pytest.param(SSHZK, {}, {}, steps(C(*Z123, *K123), ZKQ, READY), id="fresh-ssh-hosts-ready-no-prepare"),
    pytest.param(SSHKR, {}, {"missing": {"vm2": ("user kafka",)}},
                 steps(P("vm2"), F(*K123), C(*K123), READY), id="fresh-ssh-one-host-lacks-something"),

    # nothing to do: no step at all (not even host preparation)
    pytest.param(ZK3K3, {"*": "ok"}, {}, [], id="noop-zk3-kafka3"),
    pytest.param(SPLIT, {"*": "ok"}, {}, [], id="noop-kraft-split"),
    pytest.param(SSHZK, {"*": "ok"}, {}, [], id="noop-ssh-zk"),
    pytest.param(SSHKR, {"*": "ok"}, {"missing": {"vm1": ("user kafka",)}}, [], id="noop-host-lacks-but-nothing-to-do"),

    # stopped nodes: Start only (never a format), settle when the cluster was live
    pytest.param(ZK1K3, {"*": "ok", "kafka2": "stopped"}, {}, steps(S("kafka2"), READY_LIVE),
                 id="one-broker-stopped"),
    pytest.param(KR3, {"*": "ok", "kafka3": "stopped"}, {}, steps(S("kafka3"), READY_LIVE),
                 id="kraft-node-stopped-no-format"),
    pytest.param(SSHKR, {"*": "ok", "kafka2": "stopped"}, {}, steps(S("kafka2"), READY_LIVE),
                 id="ssh-kraft-node-stopped"),
    pytest.param(ZK3K3, {"*": "stopped"}, {}, steps(S(*Z123, *K123), ZKQ, READY), id="whole-cluster-stopped"),
    pytest.param(ZK3K3, {"*": "ok", "zoo2": "stopped"}, {}, steps(S("zoo2"), ZKQ), id="zookeeper-member-stopped"),
    pytest.param(ZK1K1, {"*": "ok", "zoo1": "stopped"}, {}, steps(S("zoo1"), ZKQ), id="single-zookeeper-stopped"),

    # one node's config changed: reconfigure it alone, its gate, then the final wait
    pytest.param(ZK3K3, {"*": "ok", "kafka2": "conf"}, {"controller": 1},
                 steps(safe("kafka2"), R("kafka2"), READY_LIVE), id="one-broker-config-changed"),
    pytest.param(SSHKR, {"*": "ok", "kafka1": "conf"}, {"controller": 2},
                 steps(safe("kafka1"), R("kafka1"), READY_LIVE), id="ssh-kraft-one-node-config-changed"),
    pytest.param(SPLIT, {"*": "ok", "controller3": "conf"}, {"controller": 101},
                 steps(R("controller3"), READY_LIVE), id="kraft-split-one-controller-changed"),

    # several nodes changed on a live cluster: one at a time, brokers, controllers, active last
    pytest.param(ZK3K3, {"*": "ok", "kafka1": "conf", "kafka3": "conf"}, {"controller": 1},
                 steps(safe("kafka3"), R("kafka3"), ready("kafka3"), safe("kafka1"), R("kafka1"), READY_LIVE),
                 id="zk-mode-two-brokers-active-controller-last"),
    pytest.param(KR3, {"*": "ok", "kafka1": "conf", "kafka2": "conf"}, {"controller": 1},
                 steps(safe("kafka2"), R("kafka2"), ready("kafka2"), safe("kafka1"), R("kafka1"), READY_LIVE),
                 id="kraft-combined-two-nodes-active-controller-last"),
    pytest.param(SPLIT, {"*": "ok", "controller1": "conf", "controller2": "conf", "kafka1": "conf",
                         "kafka3": "conf"}, {"controller": 101},
                 steps(safe("kafka1"), R("kafka1"), ready("kafka1"), safe("kafka3"), R("kafka3"), ready("kafka3"),
                       R("controller2"), ready("controller2"), R("controller1"), READY_LIVE),
                 id="kraft-split-brokers-then-controllers-active-last"),
    pytest.param(SSHZK, {"*": "ok", "zoo2": "conf", "kafka3": "conf"}, {"controller": 1},
                 steps(R("zoo2"), ZKQ, safe("kafka3"), R("kafka3"), READY_LIVE),
                 id="ssh-zk-member-and-broker-changed"),

    # ZooKeeper members reconfigured while the ensemble is live: one at a time, quorum after each
    pytest.param(ZK3K3, {"*": "ok", "zoo2": "conf"}, {}, steps(R("zoo2"), ZKQ), id="zookeeper-member-changed"),
    pytest.param(ZK3K1, {"*": "ok", "zoo1": "conf", "zoo3": "conf"}, {},
                 steps(R("zoo1"), zkq("zoo1"), R("zoo3"), ZKQ), id="two-zookeeper-members-changed"),
    pytest.param(ZK1K1, {"*": "ok", "zoo1": "conf"}, {}, steps(R("zoo1"), ZKQ), id="single-zookeeper-changed"),

    # nodes added to the inventory: create only them (format them on KRaft)
    pytest.param(ZK1K3, {"zoo1": "ok", "kafka1": "ok", "kafka2": "ok"}, {},
                 steps(C("kafka3"), READY_LIVE), id="broker-added"),
    pytest.param(SPLIT, {"*": "ok", "kafka3": None}, {}, steps(F("kafka3"), C("kafka3"), READY_LIVE),
                 id="kraft-split-broker-added"),
    pytest.param(SSHKR, {"kafka1": "ok", "kafka2": "ok"}, {"missing": {"vm3": JAVA}},
                 steps(P("vm3"), F("kafka3"), C("kafka3"), READY_LIVE), id="ssh-kraft-node-added-on-new-host"),

    # image / version changed (the definition digest differs)
    pytest.param(ZK3K3, {"*": "image-down"}, {}, steps(R(*Z123, *K123), ZKQ, READY),
                 id="image-changed-on-stopped-cluster-all-at-once"),
    pytest.param(KR3, {"*": "ok", "kafka2": "image"}, {"controller": 1},
                 steps(safe("kafka2"), R("kafka2"), READY_LIVE), id="image-changed-on-one-node-of-live-cluster"),
    pytest.param(KR3, {"*": "image"}, {"controller": 2},
                 steps(safe("kafka1"), R("kafka1"), ready("kafka1"), safe("kafka3"), R("kafka3"), ready("kafka3"),
                       safe("kafka2"), R("kafka2"), READY_LIVE),
                 id="image-changed-on-live-kraft-rolls"),
    pytest.param(ZK3K3, {"*": "image"}, {"controller": 3},
                 steps(R("zoo1"), zkq("zoo1"), R("zoo2"), zkq("zoo2"), R("zoo3"), ZKQ,
                       safe("kafka1"), R("kafka1"), ready("kafka1"), safe("kafka2"), R("kafka2"), ready("kafka2"),
                       safe("kafka3"), R("kafka3"), READY_LIVE),
                 id="version-bump-on-live-zk-cluster-rolls"),

    # a half-applied earlier run: create (and format) only what is missing
    pytest.param(ZK3K3, {"zoo1": "ok", "zoo2": "ok", "zoo3": "ok", "kafka1": "ok"}, {},
                 steps(C("kafka2", "kafka3"), READY_LIVE), id="half-applied-brokers-missing"),
    pytest.param(ZK3K3, {"zoo1": "ok"}, {}, steps(C("zoo2", "zoo3"), ZKQ, C(*K123), READY),
                 id="half-applied-zookeepers-missing"),
    pytest.param(KR3, {"kafka1": "ok"}, {}, steps(F("kafka2", "kafka3"), C("kafka2", "kafka3"), READY_LIVE),
                 id="half-applied-kraft-formats-only-missing"),
    pytest.param(SPLIT, {"controller1": "ok", "controller2": "ok", "controller3": "ok"}, {},
                 steps(F(*K123), C(*K123), READY_LIVE), id="half-applied-kraft-split-controllers-up"),
    pytest.param(SSHKR, {"kafka1": "unformatted"}, {},
                 steps(F(*K123), C("kafka2", "kafka3") + S("kafka1"), READY), id="half-applied-ssh-unformatted-node"),

    # orphans: reported in the summary, never acted on
    pytest.param(ZK1K1, {"*": "ok"}, {"orphans": ("kafka2",)}, [], id="orphan-only"),
    pytest.param(ZK1K1, {"*": "ok", "kafka1": "stopped"}, {"orphans": ("kafka2",)}, steps(S("kafka1"), READY),
                 id="orphan-and-stopped-broker"),

    # ZooKeeper mode: a crashed broker waits for its ZooKeeper session to expire first
    pytest.param(ZK1K3, {"*": "ok", "kafka2": "crashed"}, {}, steps(sessions("kafka2"), S("kafka2"), READY_LIVE),
                 id="zk-mode-crashed-broker"),
    pytest.param(ZK3K3, {"*": "ok", "kafka1": "crashed", "kafka3": "crashed"}, {},
                 steps(sessions("kafka1", "kafka3"), S("kafka1", "kafka3"), READY_LIVE),
                 id="zk-mode-two-crashed-brokers"),
    pytest.param(SSHZK, {"*": "ok", "kafka2": "crashed"}, {}, steps(sessions("kafka2"), S("kafka2"), READY_LIVE),
                 id="ssh-zk-mode-crashed-broker"),
    pytest.param(KR3, {"*": "ok", "kafka2": "crashed"}, {}, steps(S("kafka2"), READY_LIVE),
                 id="kraft-crashed-node-no-session-wait"),
]


@pytest.mark.parametrize("preset, states, extra, expected", UP_TABLE)
def test_plan_up(preset, states, extra, expected):
    p = plan_up(bundle_of(preset), observe(preset, states, **extra))
    assert shape(p) == expected
    assert p.changes == bool(expected)


def test_the_table_is_big_enough():
    assert len(UP_TABLE) >= 34


# -- plan_up: details the table does not show ------------------------------------------------------

@pytest.mark.parametrize("preset", [ZK3K3, SPLIT, SSHZK, SSHKR])
def test_noop_has_no_steps_and_every_node_unchanged(preset):
    p = plan_up(bundle_of(preset), observe(preset, {"*": "ok"}))
    assert p.steps == [] and p.actions == [] and p.changes is False
    assert p.summary == {nb.name: ("unchanged", "running, config unchanged") for nb in bundle_of(preset)}
    assert p.lines() == []


def test_summary_says_what_and_why():
    p = plan_up(bundle_of(ZK3K3), observe(ZK3K3, {"zoo1": "ok", "zoo2": "ok", "zoo3": "ok", "kafka1": "crashed",
                                                  "kafka2": "conf"}, orphans=("kafka9",)))
    assert p.summary == {
        "zoo1": ("unchanged", "running, config unchanged"),
        "zoo2": ("unchanged", "running, config unchanged"),
        "zoo3": ("unchanged", "running, config unchanged"),
        "kafka1": ("start", "exited (exit code 137)"),
        "kafka2": ("reconfigure", "rendered server.properties changed; data kept"),
        "kafka3": ("create", "new node"),
        "kafka9": ("orphan", "not in the inventory: left alone (kops down --purge removes the whole cluster)"),
    }
    assert not any(a.node == "kafka9" for a in p.actions)


def test_reconfigure_names_the_changed_files_or_the_definition():
    p = plan_up(bundle_of(KR3), observe(KR3, {"*": "ok", "kafka1": "conf", "kafka2": "image"}, controller=3))
    by_node = {a.node: a for a in p.of("reconfigure")}
    assert by_node["kafka1"].changed == ("server.properties",)
    assert by_node["kafka2"].changed == ()
    assert by_node["kafka2"].reason == "rendered image, command line or ports changed; data kept"


def test_formats_carry_the_cluster_id_and_run_where_the_node_lives():
    p = plan_up(bundle_of(SSHKR), observe(SSHKR, {}))
    formats = p.of("format")
    assert all(isinstance(a, Format) and a.cluster_id == CLUSTER_ID for a in formats)
    assert {a.node: a.host for a in formats} == {"kafka1": "vm1", "kafka2": "vm2", "kafka3": "vm3"}


def test_ssh_nodes_are_placed_on_their_hosts():
    p = plan_up(bundle_of(SSHZK), observe(SSHZK, {}, missing={"vm1": JAVA, "vm3": ("user kafka",)}))
    assert {a.node: a.host for a in p.of("create")} == {
        "zoo1": "vm1", "zoo2": "vm2", "zoo3": "vm3", "kafka1": "vm1", "kafka2": "vm2", "kafka3": "vm3"}
    prepares = p.steps[0]
    assert all(isinstance(a, PrepareHost) for a in prepares)
    assert [(a.host, tuple(map(str, a.needs)), a.reason) for a in prepares] == [
        ("vm1", JAVA, "; ".join(JAVA)), ("vm3", ("user kafka",), "user kafka")]


def test_rolling_gates_are_quiet_and_the_final_gate_speaks():
    p = plan_up(bundle_of(ZK3K3), observe(ZK3K3, {"*": "ok", "zoo1": "conf", "kafka1": "conf", "kafka2": "conf"},
                                          controller=2))
    assert shape(p) == steps(R("zoo1"), ZKQ, safe("kafka1"), R("kafka1"), ready("kafka1"), safe("kafka2"),
                             R("kafka2"), READY_LIVE)
    waits = [a for a in p.actions if isinstance(a, Wait)]
    assert [(w.gate, w.nodes, w.quiet) for w in waits] == [
        ("zookeeper-quorum", (), False), ("safe-to-stop", ("kafka1",), False), ("kafka-ready", ("kafka1",), True),
        ("safe-to-stop", ("kafka2",), False), ("kafka-ready", (), False)]


def test_crashed_broker_session_wait_carries_id_death_and_timeout():
    p = plan_up(bundle_of(ZK1K3), observe(ZK1K3, {"*": "ok", "kafka2": "crashed"}))
    (wait,) = p.steps[0]
    assert wait.gate == "zookeeper-sessions" and wait.sessions == (("kafka2", 2, FINISHED, 18.0),)


def test_session_wait_uses_the_configured_session_timeout():
    spec = inventory.loads("""
name: sess
kafka: {version: 3.9.2, mode: zookeeper, config: {zookeeper.session.timeout.ms: 6000}}
zookeeper: {nodes: 1}
brokers: {nodes: 2}
""")
    b = render.build(topology.build(spec, CLUSTER_ID))
    obs = Observed(nodes={nb.name: node_obs(nb, "docker", "crashed" if nb.name == "kafka1" else "ok") for nb in b})
    p = plan_up(b, obs)
    assert shape(p) == steps(sessions("kafka1"), S("kafka1"), READY_LIVE)
    assert p.steps[0][0].sessions == (("kafka1", 1, FINISHED, 6.0),)


def test_crashed_broker_without_a_death_time_gets_no_session_wait():
    obs = observe(ZK1K3, {"*": "ok"})
    obs.nodes["kafka1"] = NodeObs("kafka1", "broker", 1, exists=True, running=False, state="exited",
                                  crashed=True, files=dict(bundle_of(ZK1K3).nodes["kafka1"].sums))
    assert shape(plan_up(bundle_of(ZK1K3), obs)) == steps(S("kafka1"), READY_LIVE)


@pytest.mark.parametrize("preset, states, first, rolled, gate", [
    pytest.param(ZK3K3, {"*": "ok", "zoo2": "stopped", "zoo1": "conf"}, "zoo2", "zoo1", "zookeeper-quorum",
                 id="zookeeper"),
    pytest.param(ZK3K3, {"*": "ok", "kafka2": "stopped", "kafka1": "conf"}, "kafka2", "kafka1", "kafka-ready",
                 id="kafka"),
])
def test_started_node_is_awaited_before_the_roll_takes_another_down(preset, states, first, rolled, gate):
    """zoo2 is down and zoo1 changed: starting zoo2 and at once taking zoo1 down leaves one
    of three ZooKeepers serving (no quorum). Expected: a gate between the two steps."""
    p = plan_up(bundle_of(preset), observe(preset, states, controller=3))
    kinds = [[(a.kind, a.node, getattr(a, "gate", None)) for a in step] for step in p.steps]
    i_start = next(i for i, s in enumerate(kinds) if ("start", first, None) in s)
    i_roll = next(i for i, s in enumerate(kinds) if ("reconfigure", rolled, None) in s)
    between = [a for s in p.steps[i_start + 1:i_roll] for a in s]
    assert any(isinstance(a, Wait) and a.gate == gate for a in between)


# -- the dry-run shape ---------------------------------------------------------------------------

def test_dry_run_shape_is_json_and_numbered_lines():
    p = plan_up(bundle_of(ZK3K3), observe(ZK3K3, {"*": "ok", "zoo2": "stopped", "zoo3": None, "kafka1": "crashed",
                                                  "kafka3": "conf"},
                                          missing={"docker": ("image kops/kafka:3.9.2",)}, controller=2))
    assert shape(p) == steps(P("docker"), S("zoo2") + C("zoo3"), ZKQ, sessions("kafka1"), S("kafka1"),
                             ready("kafka1"), safe("kafka3"), R("kafka3"), READY_LIVE)
    back = json.loads(json.dumps(p.as_dict()))
    assert set(back) == {"nodes", "steps"}
    assert back["nodes"][0] == {"node": "zoo1", "action": "unchanged", "reason": "running, config unchanged"}
    assert back["steps"][0] == [{"kind": "prepare", "host": "docker", "reason": "image kops/kafka:3.9.2",
                                 "needs": ["image kops/kafka:3.9.2"]}]
    assert back["steps"][1] == [{"kind": "start", "node": "zoo2", "host": "docker", "reason": "exited"},
                                {"kind": "create", "node": "zoo3", "host": "docker", "reason": "new node"}]
    assert back["steps"][3] == [{"kind": "wait", "gate": "zookeeper-sessions", "nodes": ["kafka1"],
                                 "settle": 0.0, "quiet": False, "sessions": [["kafka1", 1, FINISHED, 18.0]]}]
    assert back["steps"][5] == [{"kind": "wait", "gate": "kafka-ready", "nodes": ["kafka1"], "settle": SETTLE,
                                 "quiet": True}]
    assert back["steps"][6] == [{"kind": "wait", "gate": "safe-to-stop", "nodes": ["kafka3"], "settle": 0.0,
                                 "quiet": False}]
    assert back["steps"][7] == [{"kind": "reconfigure", "node": "kafka3", "host": "docker", "changed":
                                 ["server.properties"], "reason": "rendered server.properties changed; data kept"}]
    assert back["steps"][8] == [{"kind": "wait", "gate": "kafka-ready", "settle": SETTLE, "quiet": False}]
    lines = p.lines()
    assert lines[:5] == [
        " 1. prepare docker: image kops/kafka:3.9.2",
        " 2. at once:",
        "      - start zoo2: exited",
        "      - create zoo3: new node",
        " 3. wait for the ZooKeeper ensemble to answer with one leader",
    ]
    assert lines[-1] == (" 9. wait for Kafka to be ready (brokers registered on their addresses, a controller, "
                         "partitions whole, a produce/consume round trip), steady for 10 s")
    numbered = [ln for ln in lines if not ln.startswith("      - ")]
    assert [int(ln.split(".")[0]) for ln in numbered] == list(range(1, len(p.steps) + 1))


# -- plan_down --------------------------------------------------------------------------------

def running(preset: str, **states: str) -> Observed:
    return observe(preset, {"*": "ok", **states})


def down_shape(p: plan.Plan) -> list[list[tuple]]:
    return [sorted((a.kind, a.node or a.host) for a in step) for step in p.steps]


def Stp(*nodes):
    return [("stop", n) for n in nodes]


DOWN_TABLE = [
    pytest.param(ZK3K3, {}, False, [Stp(*K123), Stp(*Z123)], id="zk-brokers-then-zookeeper"),
    pytest.param(SPLIT, {}, False, [Stp(*K123), Stp(*C123)], id="kraft-split-brokers-then-controllers"),
    pytest.param(KR3, {}, False, [Stp(*K123)], id="kraft-combined-one-group"),
    pytest.param(SSHZK, {}, False, [Stp(*K123), Stp(*Z123)], id="ssh-zk"),
    pytest.param(ZK3K3, {"kafka2": "stopped", "zoo3": "crashed"}, False,
                 [Stp("kafka1", "kafka3"), Stp("zoo1", "zoo2")], id="only-running-nodes-stop"),
    pytest.param(ZK1K1, {"zoo1": "stopped", "kafka1": "stopped"}, False, [], id="already-stopped-nothing"),
    pytest.param(ZK1K1, {}, True, [Stp("kafka1"), Stp("zoo1"), [("remove", "kafka1"), ("remove", "zoo1")],
                                   [("remove-host", "docker")]], id="purge-docker"),
    pytest.param(SSHKR, {"kafka3": "stopped"}, True,
                 [Stp("kafka1", "kafka2"), [("remove", n) for n in K123],
                  [("remove-host", h) for h in ("vm1", "vm2", "vm3")]], id="purge-ssh-removes-every-node-then-hosts"),
    pytest.param(ZK1K1, {"zoo1": "stopped", "kafka1": "stopped"}, True,
                 [[("remove", "kafka1"), ("remove", "zoo1")], [("remove-host", "docker")]], id="purge-stopped-cluster"),
]


@pytest.mark.parametrize("preset, states, purge, expected", DOWN_TABLE)
def test_plan_down(preset, states, purge, expected):
    p = plan_down(running(preset, **states), purge=purge)
    assert down_shape(p) == expected
    assert p.changes == bool(expected)


def test_plan_down_grace_and_where_come_from_the_observed_nodes():
    obs = running(ZK1K3)
    obs.nodes["kafka3"] = NodeObs("kafka3", "broker", 3, exists=True, running=True, state="running",
                                  stop_grace=None, where="")
    p = plan_down(obs)
    stops = {a.node: a for a in p.actions if isinstance(a, Stop)}
    assert {n: a.grace for n, a in stops.items()} == {"kafka1": 120, "kafka2": 120, "kafka3": 30, "zoo1": 30}
    assert stops["kafka1"].host == "zk-single-kafka-multiple-kafka1" and stops["kafka3"].host is None
    kraft = {a.node: a.grace for a in plan_down(running(SSHKR)).actions}
    assert kraft == {"kafka1": 40, "kafka2": 40, "kafka3": 40}


def test_plan_down_summary():
    p = plan_down(running(ZK1K3, kafka2="stopped"))
    assert p.summary == {"kafka1": ("stop", "running; data kept"), "kafka3": ("stop", "running; data kept"),
                         "zoo1": ("stop", "running; data kept"), "kafka2": ("unchanged", "already exited")}
    purged = plan_down(running(ZK1K3, kafka2="stopped"), purge=True)
    assert {a for a, _ in purged.summary.values()} == {"remove"}


def test_plan_down_of_nothing_is_empty():
    p = plan_down(Observed())
    assert p.steps == [] and p.changes is False and p.summary == {}


# -- plan_restart -----------------------------------------------------------------------------

def nodes_of(preset: str) -> list[NodeObs]:
    """Every node of a preset, running, as a provider observes it."""
    b = bundle_of(preset)
    return [node_obs(nb, b.driver, "ok") for nb in b]


def roll(*nodes_and_roles: str) -> list[list[tuple]]:
    """The expected restart steps: "kafka1" (broker/combined: safe-to-stop first) or
    "-controller1" (no safe-to-stop gate)."""
    out = []
    for item in nodes_and_roles:
        name = item.lstrip("-")
        if not item.startswith("-"):
            out.append([("wait", "safe-to-stop", (name,), 0.0)])
        out.append([("restart", name)])
        out.append([("wait", "healthy", (name,), 3.0)])
    return out


RESTART_TABLE = [
    pytest.param(ZK3K3, 2, None, roll("kafka1", "kafka3", "kafka2"), id="zk-mode-active-controller-last-no-zk"),
    pytest.param(ZK1K3, None, None, roll("kafka1", "kafka2", "kafka3"), id="zk-mode-no-controller-known"),
    pytest.param(KR3, 1, None, roll("kafka2", "kafka3", "kafka1"), id="kraft-combined-active-last"),
    pytest.param(SPLIT, 102, None,
                 roll("kafka1", "kafka2", "kafka3", "-controller1", "-controller3", "-controller2"),
                 id="kraft-split-brokers-then-controllers-active-last"),
    pytest.param(ZK3K3, 1, ["kafka1", "zoo2", "kafka3"], roll("-zoo2", "kafka3", "kafka1"),
                 id="zookeeper-only-when-named-and-first"),
    pytest.param(SPLIT, 101, ["controller1", "kafka2"], roll("kafka2", "-controller1"), id="only-named-nodes"),
    pytest.param(SSHZK, 3, ["zoo1", "zoo3"], roll("-zoo1", "-zoo3"), id="only-zookeepers"),
]


@pytest.mark.parametrize("preset, controller, only, expected", RESTART_TABLE)
def test_plan_restart(preset, controller, only, expected):
    p = plan_restart(nodes_of(preset), controller, only)
    assert shape(p) == expected
    assert p.summary == {n: ("restart", "rolling restart") for n in p.summary}
    assert list(p.summary) == [s[0][1] for s in expected if s[0][0] == "restart"]


def test_plan_restart_waits_are_quiet_and_settle():
    p = plan_restart(nodes_of(KR3), 2)
    healthy = [a for a in p.actions if isinstance(a, Wait) and a.gate == "healthy"]
    assert healthy and all(w.quiet and w.settle == 3.0 for w in healthy)
    assert all(not isinstance(a, Reconfigure) for a in p.actions)
