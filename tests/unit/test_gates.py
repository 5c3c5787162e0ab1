"""Gates with a fake provider: waiting, timing out, failing fast, and not hiding bugs.

What is proven here (no Docker, no network, no JVM, no sleeping: the poll loop runs on an
injected clock whose sleep only moves it on; POLL is 0.05 s, deadlines 1.5 s of that clock):

* a zookeeper-quorum wait polls until every member answers ``srvr`` and exactly one is the
  leader (a single member may be standalone), and says so unless quiet;
* when the deadline passes it raises WaitTimeout (exit code 4) naming what it waited for
  and the last reason, with every watched node's last log lines in the details;
* when a watched node stops it fails at once with a KopsError (exit code 1, not 4) that
  names the node and shows its log;
* a probe that raises anything but NotYet (a bug) propagates as itself, not as a time-out;
* ``settle`` needs the condition to hold that long; the other gates (healthy,
  safe-to-stop, kafka-ready, zookeeper-sessions) on recorded probe answers.
"""

from __future__ import annotations

import time

import pytest

from kops.orchestration import gates
from kops.kafka import health
from kops.model import inventory, topology
from kops.core import wait as waiting
from kops.core.errors import EXIT_FAILURE, EXIT_TIMEOUT, KopsError, WaitTimeout
from kops.kafka.health import KafkaHealth
from kops.plan import NodeObs, Observed, Wait
from kops.orchestration.status import Probes

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
ZK3K3 = "zk-multiple-kafka-multiple"
SCOPE = " --preset zk-multiple-kafka-multiple"
LEADER, FOLLOWER = "Zookeeper version: 3.8.4\nMode: leader\n", "Zookeeper version: 3.8.4\nMode: follower\n"
NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"


class FakeClock:
    """kops.wait's clock, injected: ``sleep`` moves it on without waiting."""

    def __init__(self):
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


CLOCK = FakeClock()


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch):
    global CLOCK
    CLOCK = FakeClock()
    monkeypatch.setattr(waiting, "POLL", 0.05)
    monkeypatch.setattr(waiting, "Clock", lambda: CLOCK)
    return CLOCK


def soon(seconds: float = 1.5) -> float:
    return CLOCK.now() + seconds


class FakeProvider:
    """Answers from scripts: each value is one answer, or a list of answers given in turn
    (the last one repeats)."""

    name = "fake"

    def __init__(self, srvr=None, states=None, observed=None):
        self.srvr = {k: list(v) if isinstance(v, list) else [v] for k, v in (srvr or {}).items()}
        self.states = {k: list(v) if isinstance(v, list) else [v] for k, v in (states or {}).items()}
        self.observed = observed or Observed()
        self.state_calls: list[list[str]] = []
        self.tail_calls: list[tuple[str, int]] = []
        self.srvr_calls = 0

    @staticmethod
    def _next(script: list):
        return script.pop(0) if len(script) > 1 else script[0]

    def node_states(self, names):
        self.state_calls.append(list(names))
        return {n: self._next(self.states[n]) if n in self.states else (True, "running") for n in names}

    def tail(self, node, lines=30):
        self.tail_calls.append((node, lines))
        return f"[{node}] INFO starting\n[{node}] ERROR the last of {lines} lines"

    def zk_srvr(self, node):
        self.srvr_calls += 1
        return self._next(self.srvr[node]) if node in self.srvr else None

    def quorum_state(self, node):
        return None

    def observe(self, bundle):
        return self.observed


def ctx_for(provider, preset=ZK3K3):
    log: list[str] = []
    topo = topology.build(inventory.load(preset=preset), CLUSTER_ID)
    return gates.Context(topo, provider, log.append, SCOPE), log


QUORUM = Wait(gate="zookeeper-quorum")


# -- zookeeper-quorum ---------------------------------------------------------------------------

def test_quorum_passes_once_every_member_answers_with_one_leader():
    fake = FakeProvider(srvr={"zoo1": [None, None, FOLLOWER], "zoo2": LEADER, "zoo3": [NOT_SERVING, FOLLOWER]})
    ctx, log = ctx_for(fake)
    modes = gates.wait(ctx, QUORUM, soon())
    assert modes == {"zoo1": "follower", "zoo2": "leader", "zoo3": "follower"}
    assert len(fake.state_calls) == 3 and all(c == ["zoo1", "zoo2", "zoo3"] for c in fake.state_calls)
    assert len(log) == 1 and log[0].startswith("zookeeper ready in ")
    assert log[0].endswith(": zoo1 follower, zoo2 leader, zoo3 follower")


def test_quiet_quorum_wait_says_nothing():
    ctx, log = ctx_for(FakeProvider(srvr={"zoo1": FOLLOWER, "zoo2": FOLLOWER, "zoo3": LEADER}))
    gates.wait(ctx, Wait(gate="zookeeper-quorum", quiet=True), soon())
    assert log == []


def test_single_member_standalone_is_a_quorum():
    ctx, _ = ctx_for(FakeProvider(srvr={"zoo1": "Mode: standalone\n"}), preset="zk-single-kafka-single")
    assert gates.wait(ctx, QUORUM, soon()) == {"zoo1": "standalone"}


def test_quorum_times_out_naming_the_gate_the_reason_and_showing_tails():
    fake = FakeProvider(srvr={"zoo1": LEADER, "zoo2": FOLLOWER, "zoo3": NOT_SERVING})
    ctx, _ = ctx_for(fake)
    t0 = CLOCK.now()
    with pytest.raises(WaitTimeout) as err:
        gates.wait(ctx, QUORUM, soon())
    assert 1.5 <= CLOCK.now() - t0 < 1.5 + 2 * waiting.POLL
    e = err.value
    assert e.exit_code == EXIT_TIMEOUT == 4
    assert "waiting for the ZooKeeper ensemble to answer with one leader" in e.message
    assert e.message.endswith(": no answer yet from zoo3")
    for z in ("zoo1", "zoo2", "zoo3"):
        assert f"--- {z}, last log lines:\n[{z}] INFO starting\n[{z}] ERROR the last of 12 lines" in e.details
    assert "kafka1" not in e.details
    assert e.hint.endswith(f"(kops logs NODE{SCOPE})")


def test_two_leaders_is_not_a_quorum():
    ctx, _ = ctx_for(FakeProvider(srvr={"zoo1": LEADER, "zoo2": LEADER, "zoo3": FOLLOWER}))
    with pytest.raises(WaitTimeout) as err:
        gates.wait(ctx, QUORUM, soon())
    assert "no single leader yet: {'zoo1': 'leader', 'zoo2': 'leader', 'zoo3': 'follower'}" in err.value.message


def test_watched_node_that_stops_fails_fast_with_its_log():
    fake = FakeProvider(srvr={"zoo1": LEADER, "zoo2": NOT_SERVING, "zoo3": FOLLOWER},
                        states={"zoo2": [(True, "running"), (False, "exited (137)")]})
    ctx, _ = ctx_for(fake)
    t0 = CLOCK.now()
    with pytest.raises(KopsError) as err:
        gates.wait(ctx, QUORUM, soon())
    assert CLOCK.now() - t0 == pytest.approx(waiting.POLL)   # the second round, well before the deadline
    e = err.value
    assert not isinstance(e, WaitTimeout)
    assert e.exit_code == EXIT_FAILURE == 1
    assert e.message == "zoo2 (exited (137)) stopped while kops waited for it"
    assert e.details == "--- zoo2, last log lines:\n[zoo2] INFO starting\n[zoo2] ERROR the last of 30 lines"
    assert e.hint.endswith(f"`kops logs zoo2{SCOPE}` shows more")
    assert fake.tail_calls == [("zoo2", 30)]


def test_a_bug_in_a_probe_propagates_instead_of_timing_out(monkeypatch):
    def broken(text):
        raise TypeError("zk_mode() got garbage")

    monkeypatch.setattr(health, "zk_mode", broken)
    ctx, _ = ctx_for(FakeProvider(srvr={"zoo1": LEADER, "zoo2": FOLLOWER, "zoo3": FOLLOWER}))
    t0 = CLOCK.now()
    with pytest.raises(TypeError, match="got garbage"):
        gates.wait(ctx, QUORUM, soon())
    assert CLOCK.now() == t0   # the first round: not retried


# -- settle ----------------------------------------------------------------------------------------

def test_settle_needs_the_condition_to_hold_that_long():
    ctx, _ = ctx_for(FakeProvider(srvr={"zoo1": LEADER, "zoo2": FOLLOWER, "zoo3": FOLLOWER}))
    t0 = CLOCK.now()
    gates.wait(ctx, Wait(gate="zookeeper-quorum", settle=0.3), soon())
    assert 0.3 <= CLOCK.now() - t0 < 0.3 + 2 * waiting.POLL


def test_a_relapse_restarts_the_settle_clock():
    # answers for 3 rounds, then zoo3 drops out for 2, then answers for good
    fake = FakeProvider(srvr={"zoo1": LEADER, "zoo2": FOLLOWER,
                              "zoo3": [FOLLOWER] * 3 + [NOT_SERVING] * 2 + [FOLLOWER]})
    ctx, _ = ctx_for(fake)
    t0 = CLOCK.now()
    gates.wait(ctx, Wait(gate="zookeeper-quorum", settle=0.25), soon())
    assert CLOCK.now() - t0 >= 0.25 + 5 * waiting.POLL


def test_settle_longer_than_the_deadline_times_out_saying_how_steady():
    ctx, _ = ctx_for(FakeProvider(srvr={"zoo1": LEADER, "zoo2": FOLLOWER, "zoo3": FOLLOWER}))
    with pytest.raises(WaitTimeout) as err:
        gates.wait(ctx, Wait(gate="zookeeper-quorum", settle=10), soon(0.3))
    assert err.value.message.endswith(": steady for 0 of 10 s")


# -- the other gates, on recorded probe answers ----------------------------------------------------

def running_cluster() -> Observed:
    topo = topology.build(inventory.load(preset=ZK3K3), CLUSTER_ID)
    return Observed(nodes={n.name: NodeObs(n.name, n.role, n.id, exists=True, running=True, state="running")
                           for n in topo.nodes})


def test_healthy_gate_waits_for_a_healthy_status(monkeypatch):
    zk = {"zoo1": "follower", "zoo2": "leader", "zoo3": "follower"}
    answers = [Probes(KafkaHealth(brokers={1: "a", 3: "c"}, controller=1), zk=zk),      # kafka2 not back yet
               Probes(KafkaHealth(brokers={1: "a", 2: "b", 3: "c"}, controller=1), zk=zk)]
    monkeypatch.setattr("kops.orchestration.status.collect", lambda *a, **k: answers.pop(0) if len(answers) > 1 else answers[0])
    ctx, _ = ctx_for(FakeProvider(observed=running_cluster()))
    st = gates.wait(ctx, Wait(gate="healthy", nodes=("kafka2",), quiet=True), soon())
    assert st.state == "healthy" and st.controller == 1


def test_healthy_gate_times_out_with_the_status_problems(monkeypatch):
    probes = Probes(KafkaHealth(brokers={1: "a", 3: "c"}, controller=1),
                    zk={"zoo1": "follower", "zoo2": "leader", "zoo3": "follower"})
    monkeypatch.setattr("kops.orchestration.status.collect", lambda *a, **k: probes)
    fake = FakeProvider(observed=running_cluster())
    ctx, _ = ctx_for(fake)
    with pytest.raises(WaitTimeout) as err:
        gates.wait(ctx, Wait(gate="healthy", nodes=("kafka2",)), soon(0.3))
    assert err.value.message.endswith("waiting for the whole cluster to be healthy: kafka2: running, not registered")
    assert fake.state_calls[0] == ["kafka2"] and [n for n, _ in fake.tail_calls] == ["kafka2"]


def test_safe_to_stop_waits_for_the_isr(monkeypatch):
    blockers = [["orders-0 (ISR [1, 2], min.insync.replicas 2)"], []]
    seen = []

    def restart_blockers(bootstrap, broker_id):
        seen.append((str(bootstrap), broker_id))
        return blockers.pop(0) if len(blockers) > 1 else blockers[0]

    monkeypatch.setattr(health, "restart_blockers", restart_blockers)
    ctx, _ = ctx_for(FakeProvider())
    assert gates.wait(ctx, Wait(gate="safe-to-stop", nodes=("kafka2",)), soon()) is True
    assert seen[0] == ("127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094", 2)


def test_safe_to_stop_times_out_naming_the_partitions(monkeypatch):
    monkeypatch.setattr(health, "restart_blockers", lambda b, i: ["orders-0 (ISR [1, 2], min.insync.replicas 2)"])
    ctx, _ = ctx_for(FakeProvider())
    with pytest.raises(WaitTimeout) as err:
        gates.wait(ctx, Wait(gate="safe-to-stop", nodes=("kafka1",)), soon(0.3))
    assert err.value.message.endswith(": stopping kafka1 now would take 1 partition(s) below min.insync.replicas: "
                                      "orders-0 (ISR [1, 2], min.insync.replicas 2)")


def test_kafka_ready_gate_on_recorded_answers(monkeypatch):
    asked = []

    def kafka_health(bootstrap, timeout=5):
        asked.append(str(bootstrap))
        if len(asked) == 1:
            return KafkaHealth(brokers={1: "a", 2: "b"}, controller=1)   # kafka3 not registered yet
        return KafkaHealth(brokers={1: "a", 2: "b", 3: "c"}, controller=1)

    monkeypatch.setattr(health, "kafka_health", kafka_health)
    monkeypatch.setattr(health, "round_trip", lambda bootstrap, replication, timeout=20: 0.012)
    ctx, log = ctx_for(FakeProvider())
    h, secs = gates.wait(ctx, Wait(gate="kafka-ready"), soon())
    assert secs == 0.012 and sorted(h.brokers) == [1, 2, 3]
    # the cluster's bootstrap, then each broker on its own advertised address
    assert asked[-4:] == ["127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094", "127.0.0.1:9092", "127.0.0.1:9093",
                          "127.0.0.1:9094"]
    assert log[:2] == ["brokers registered 2/3", "brokers registered 3/3"]
    assert log[-1].startswith("kafka ready in ") and log[-1].endswith(
        ": 3 broker(s) registered, controller 1, produce/consume round trip 12 ms")


def test_zookeeper_sessions_gate_watches_no_node_and_ends_when_the_id_is_gone(monkeypatch):
    answers = [KafkaHealth(brokers={1: "a", 2: "b", 3: "c"}), KafkaHealth(brokers={1: "a", 3: "c"})]
    monkeypatch.setattr(health, "kafka_health", lambda b, timeout=5: answers.pop(0) if len(answers) > 1 else answers[0])
    fake = FakeProvider(states={"kafka2": (False, "exited (137)")})   # the dead broker: not a reason to fail
    ctx, log = ctx_for(fake)
    died = time.time() - 1
    w = Wait(gate="zookeeper-sessions", nodes=("kafka2",), sessions=(("kafka2", 2, died, 18.0),))
    assert gates.wait(ctx, w, soon()) is True
    assert fake.state_calls == []
    assert log and log[0].startswith("kafka2 stopped without closing its ZooKeeper session: waiting up to ")


def test_zookeeper_sessions_long_expired_pass_without_asking(monkeypatch):
    monkeypatch.setattr(health, "kafka_health", lambda *a, **k: pytest.fail("no need to ask Kafka"))
    ctx, log = ctx_for(FakeProvider())
    w = Wait(gate="zookeeper-sessions", nodes=("kafka1",), sessions=(("kafka1", 1, time.time() - 600, 18.0),))
    assert gates.wait(ctx, w, soon()) is True and log == []


def test_zookeeper_gate_holds_until_the_running_brokers_reconnected():
    """After a ZooKeeper restart the brokers' sessions reconnect on their own; a broker
    stopped before that cannot close its session (NodeExists at its next start)."""
    from kops.orchestration import gates

    srvr = {"zoo1": "Mode: standalone\nConnections: 1\n"}
    ctx, _ = ctx_for(FakeProvider(srvr=srvr), preset="zk-single-kafka-single")
    probe, _ = gates.zookeeper_quorum(ctx, Wait(gate="zookeeper-quorum"))
    running = {n for n, (ok, _) in ctx.provider.node_states(["kafka1"]).items() if ok}
    if running:
        with pytest.raises(gates.NotYet, match="0 of the 1 running brokers"):
            probe()
    ctx.provider.srvr["zoo1"] = ["Mode: standalone\nConnections: 2\n"]   # the broker's session, and srvr's own
    assert probe() == {"zoo1": "standalone"}
