"""The status builder on recorded probe results (no Docker, no network, no JVM).

What is proven here: ``status.build`` turns observed nodes plus recorded probes (a Kafka
metadata answer, ZooKeeper ``srvr`` modes, the KRaft voters' ``quorum-state`` files) into
the one status every driver prints: healthy, degraded with named problems (a stopped
broker with its exit code and the ``kops logs NODE`` command for this target, a missing
node, under-replicated and offline partitions, a leaderless KRaft quorum), stopped and
not-found (exit code 3), and a status built without a topology from what the provider
labels say. ``kraft_leader`` picks the highest epoch, needs a majority of voters running,
and says "unknown" when a voter's file cannot be read. ``ClusterStatus.as_dict`` has the
documented keys and is JSON.
"""

from __future__ import annotations

import json

import pytest

from kops.model import inventory, topology
from kops.bundle import render
from kops.orchestration import status
from kops.kafka.health import KafkaHealth
from kops.plan import NodeObs, Observed
from kops.orchestration.status import Probes

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
ZK1K3 = "zk-single-kafka-multiple"
KR3 = "kraft-multiple"
SPLIT = "kraft-split"
SCOPE = " --preset zk-single-kafka-multiple"


def topo_of(preset: str) -> topology.Topology:
    return topology.build(inventory.load(preset=preset), CLUSTER_ID)


def observed(preset: str, **states: str) -> Observed:
    """Every node of the preset running, except those given: "exited:CODE", "oom",
    "missing" (absent) or "stopped" (exit 143, as `docker stop` leaves it)."""
    b = render.build(topo_of(preset))
    nodes = {}
    for nb in b:
        st = states.get(nb.name, "running")
        if st == "missing":
            continue
        kw = dict(name=nb.name, role=nb.node.role, id=nb.node.id, exists=True, running=True, state="running",
                  started_at="2026-01-01T00:00:00Z", where=nb.container["name"])
        if st.startswith("exited:") or st == "stopped":
            code = 143 if st == "stopped" else int(st.split(":")[1])
            kw.update(running=False, state="exited", exit_code=code, crashed=code not in (0, 143))
        elif st == "oom":
            kw.update(running=False, state="exited", exit_code=137, oom=True, crashed=True)
        nodes[nb.name] = NodeObs(**kw)
    return Observed(nodes=nodes)


def brokers(*ids: int, base: int = 9091) -> dict[int, str]:
    return {i: f"127.0.0.1:{base + i}" for i in ids}


def qstate(leader: int, epoch: int, voters=(1, 2, 3)) -> dict:
    return {"leaderId": leader, "leaderEpoch": epoch, "votedId": -1, "appliedOffset": 0,
            "currentVoters": [{"voterId": v} for v in voters], "data_version": 0}


def build(preset, obs, probes, *, topo="preset", scope=SCOPE, mode=None):
    t = topo_of(preset) if topo == "preset" else topo
    mode = mode or (t.mode if t else "zookeeper")
    return status.build(preset, "docker", mode, t.version if t else "?", t, obs, probes, scope=scope)


# -- ZooKeeper mode ------------------------------------------------------------------------------

def test_healthy_zookeeper_mode_cluster():
    st = build(ZK1K3, observed(ZK1K3),
               Probes(KafkaHealth(brokers=brokers(1, 2, 3), controller=2, partitions=51), zk={"zoo1": "standalone"}))
    assert (st.state, st.exit_code, st.problems) == ("healthy", 0, [])
    assert [(n.name, n.role, n.health, n.healthy) for n in st.nodes] == [
        ("zoo1", "zookeeper", "standalone", True),
        ("kafka1", "broker", "registered", True),
        ("kafka2", "broker", "registered, active controller", True),
        ("kafka3", "broker", "registered", True),
    ]
    assert st.controller == 2
    assert st.bootstrap == "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
    assert st.kafka["brokers_expected"] == 3 and st.kafka["partitions"] == 51


def test_one_broker_down_names_node_exit_code_and_logs_command():
    st = build(ZK1K3, observed(ZK1K3, kafka2="exited:137"),
               Probes(KafkaHealth(brokers=brokers(1, 3), controller=1), zk={"zoo1": "standalone"}))
    assert (st.state, st.exit_code) == ("degraded", 1)
    assert st.problems == ["kafka2: crashed, exited (exit code 137; kops logs kafka2 --preset zk-single-kafka-multiple)"]
    k2 = next(n for n in st.nodes if n.name == "kafka2")
    assert (k2.state, k2.health, k2.healthy, k2.where) == ("exited", "crashed (exit code 137)", False,
                                                          "zk-single-kafka-multiple-kafka2")


def test_oom_killed_broker_says_so():
    st = build(ZK1K3, observed(ZK1K3, kafka3="oom"),
               Probes(KafkaHealth(brokers=brokers(1, 2), controller=1), zk={"zoo1": "standalone"}), scope=" -i x.yaml")
    assert st.problems == ["kafka3: crashed, exited (exit code 137, OOM-killed; kops logs kafka3 -i x.yaml)"]


def test_zookeeper_not_answering_and_broker_not_registered():
    st = build(ZK1K3, observed(ZK1K3),
               Probes(KafkaHealth(brokers=brokers(1, 3), controller=1), zk={"zoo1": None}))
    assert st.state == "degraded"
    assert st.problems == ["zoo1: running, no answer", "kafka2: running, not registered"]


def test_kafka_unreachable_is_a_problem_of_its_own():
    st = build(ZK1K3, observed(ZK1K3), Probes(KafkaHealth(error="KafkaError: timed out"), zk={"zoo1": "standalone"}))
    assert st.state == "degraded"
    assert st.problems[-1] == "kafka: KafkaError: timed out"
    assert "kafka1: running, not registered" in st.problems
    assert st.kafka["error"] == "KafkaError: timed out"


def test_stopped_cluster_is_stopped_exit_3():
    obs = observed(ZK1K3, zoo1="stopped", kafka1="stopped", kafka2="stopped", kafka3="stopped")
    st = build(ZK1K3, obs, Probes(KafkaHealth(error="no broker is running")))
    assert (st.state, st.exit_code) == ("stopped", 3)
    assert all(not n.healthy and n.state == "exited" for n in st.nodes)
    assert "kafka: no broker is running" not in st.problems   # no running broker: not a Kafka problem


def test_not_found_without_nodes_exit_3():
    st = status.build("ghost", "docker", "zookeeper", "3.9.2", topo_of(ZK1K3), Observed(), None, scope=SCOPE)
    assert (st.state, st.exit_code) == ("not-found", 3)
    assert st.nodes == [] and st.problems == ["no nodes of cluster ghost found"]


def test_node_in_the_inventory_but_missing():
    st = build(ZK1K3, observed(ZK1K3, kafka3="missing"),
               Probes(KafkaHealth(brokers=brokers(1, 2), controller=1), zk={"zoo1": "standalone"}))
    assert st.state == "degraded"
    assert st.problems == ["kafka3: missing (in the inventory, not on the docker target)"]
    k3 = next(n for n in st.nodes if n.name == "kafka3")
    assert (k3.state, k3.healthy, k3.addresses["host"]) == ("missing", False, "127.0.0.1:9094")


@pytest.mark.parametrize("under, offline, expected", [
    pytest.param(["orders-0", "orders-1"], [], ["kafka: 2 under-replicated partition(s): orders-0, orders-1"],
                 id="under-replicated"),
    pytest.param([], ["payments-3"], ["kafka: 1 offline partition(s): payments-3"], id="offline"),
    pytest.param([f"t-{i}" for i in range(7)], ["p-0"],
                 ["kafka: 1 offline partition(s): p-0",
                  "kafka: 7 under-replicated partition(s): t-0, t-1, t-2, t-3, t-4"],
                 id="both-first-five-named"),
])
def test_partition_problems(under, offline, expected):
    kh = KafkaHealth(brokers=brokers(1, 2, 3), controller=1, partitions=60, under_replicated=under, offline=offline)
    st = build(ZK1K3, observed(ZK1K3), Probes(kh, zk={"zoo1": "standalone"}))
    assert (st.state, st.problems) == ("degraded", expected)
    assert st.kafka["under_replicated"] == under and st.kafka["offline"] == offline


def test_no_active_controller_in_zookeeper_mode():
    st = build(ZK1K3, observed(ZK1K3), Probes(KafkaHealth(brokers=brokers(1, 2, 3)), zk={"zoo1": "standalone"}))
    assert st.problems == ["kafka: no active controller"]


# -- KRaft ------------------------------------------------------------------------------------

def test_healthy_kraft_leader_comes_from_the_quorum_not_the_client():
    q = {"kafka1": qstate(2, 5), "kafka2": qstate(2, 5), "kafka3": qstate(2, 5)}
    st = build(KR3, observed(KR3), Probes(KafkaHealth(brokers=brokers(1, 2, 3), controller=1), quorum=q))
    assert (st.state, st.problems, st.controller) == ("healthy", [], 2)
    assert [(n.name, n.health) for n in st.nodes] == [
        ("kafka1", "registered, voter"), ("kafka2", "registered, active controller"), ("kafka3", "registered, voter")]


def test_leaderless_kraft_quorum_one_of_three_voters_running():
    q = {"kafka1": qstate(2, 5)}   # only the running voter is read; its last leader is gone
    st = build(KR3, observed(KR3, kafka2="exited:1", kafka3="exited:1"),
               Probes(KafkaHealth(brokers=brokers(1), controller=1), quorum=q), scope=" --preset kraft-multiple")
    assert (st.state, st.controller) == ("degraded", None)
    assert st.problems[0] == "kraft: the controller quorum has no leader (1 of 3 voter(s) running)"
    assert "no leader" in st.problems[0]
    assert st.problems[1:] == ["kafka2: crashed, exited (exit code 1; kops logs kafka2 --preset kraft-multiple)",
                               "kafka3: crashed, exited (exit code 1; kops logs kafka3 --preset kraft-multiple)"]


def test_kraft_split_controllers_are_voters_and_the_active_one_is_named():
    q = {f"controller{i}": qstate(103, 9, voters=(101, 102, 103)) for i in (1, 2, 3)}
    st = build(SPLIT, observed(SPLIT), Probes(KafkaHealth(brokers=brokers(1, 2, 3), controller=2), quorum=q))
    assert (st.state, st.controller) == ("healthy", 103)
    assert [(n.name, n.role, n.health) for n in st.nodes] == [
        ("controller1", "controller", "voter"), ("controller2", "controller", "voter"),
        ("controller3", "controller", "active controller"),
        ("kafka1", "broker", "registered"), ("kafka2", "broker", "registered"), ("kafka3", "broker", "registered")]
    assert all(n.addresses == {} for n in st.nodes if n.role == "controller")


def test_kraft_controller_that_is_not_a_voter_is_unhealthy():
    q = {f"controller{i}": qstate(101, 4, voters=(101, 102)) for i in (1, 2, 3)}
    st = build(SPLIT, observed(SPLIT), Probes(KafkaHealth(brokers=brokers(1, 2, 3)), quorum=q))
    assert st.problems == ["controller3: running, not a voter"]


# -- without a topology (only the cluster's name is known) ------------------------------------------

def test_status_without_topology_uses_what_the_nodes_say():
    obs = Observed(nodes={
        "zoo1": NodeObs("zoo1", "zookeeper", 1, exists=True, running=True, state="running",
                        addresses={"host": "127.0.0.1:2181", "network": "zoo1:2181"}, where="dev-zoo1"),
        "kafka2": NodeObs("kafka2", "broker", 2, exists=True, running=True, state="running",
                          addresses={"host": "127.0.0.1:9093", "network": "kafka2:19093"}, where="dev-kafka2"),
        "kafka1": NodeObs("kafka1", "broker", 1, exists=True, running=False, state="exited", exit_code=1, crashed=True,
                          addresses={"host": "127.0.0.1:9092", "network": "kafka1:19092"}, where="dev-kafka1"),
        "odd": NodeObs("odd", "", 7, exists=True, running=True, state="running", where="dev-odd"),
    })
    st = status.build("dev", "docker", "zookeeper", "3.9.2", None, obs,
                      Probes(KafkaHealth(brokers=brokers(2), controller=2), zk={"zoo1": "standalone"}),
                      scope=" --name dev")
    assert [(n.name, n.role, n.id, n.where) for n in st.nodes] == [
        ("zoo1", "zookeeper", 1, "dev-zoo1"), ("kafka1", "broker", 1, "dev-kafka1"),
        ("kafka2", "broker", 2, "dev-kafka2"), ("odd", "?", 7, "dev-odd")]
    assert st.nodes[0].addresses == {"host": "127.0.0.1:2181", "network": "zoo1:2181"}
    assert st.bootstrap == "127.0.0.1:9092,127.0.0.1:9093"
    assert st.kafka["brokers_expected"] == 2
    assert st.problems == ["kafka1: crashed, exited (exit code 1; kops logs kafka1 --name dev)"]
    assert [(n.name, n.health, n.healthy) for n in st.nodes] == [
        ("zoo1", "standalone", True), ("kafka1", "crashed (exit code 1)", False), ("kafka2", "registered, active controller", True),
        ("odd", "running", True)]


def test_status_without_topology_kraft_leader_from_observed_roles():
    obs = Observed(nodes={n: NodeObs(n, "combined", i, exists=True, running=True, state="running",
                                     addresses={"host": f"127.0.0.1:{9091 + i}"})
                          for i, n in ((1, "kafka1"), (2, "kafka2"), (3, "kafka3"))})
    q = {"kafka1": qstate(3, 2), "kafka2": qstate(3, 2), "kafka3": qstate(3, 2)}
    st = status.build("k", "docker", "kraft", "4.4.0", None, obs,
                      Probes(KafkaHealth(brokers=brokers(1, 2, 3), controller=1), quorum=q))
    assert (st.state, st.controller) == ("healthy", 3)


# -- kraft_leader -------------------------------------------------------------------------------

VOTERS = {"kafka1": 1, "kafka2": 2, "kafka3": 3}


@pytest.mark.parametrize("states, expected", [
    pytest.param({"kafka1": qstate(1, 4), "kafka2": qstate(2, 5), "kafka3": qstate(2, 5)},
                 {"leader": 2, "voters": {1, 2, 3}, "epoch": 5, "known": True}, id="highest-epoch-wins"),
    pytest.param({"kafka1": qstate(3, 7), "kafka2": qstate(1, 6)},
                 {"leader": 3, "voters": {1, 2, 3}, "epoch": 7, "known": True}, id="two-of-three-is-a-majority"),
    pytest.param({"kafka1": qstate(2, 5)},
                 {"leader": None, "voters": {1, 2, 3}, "epoch": 5, "known": True}, id="no-majority-no-leader"),
    pytest.param({"kafka1": qstate(-1, 5), "kafka2": qstate(-1, 5)},
                 {"leader": None, "voters": {1, 2, 3}, "epoch": None, "known": True}, id="nobody-knows-a-leader"),
    pytest.param({"kafka1": qstate(2, 5), "kafka2": None},
                 {"leader": None, "voters": {1, 2, 3}, "epoch": None, "known": False}, id="unreadable-file-unknown"),
    pytest.param({}, {"leader": None, "voters": {1, 2, 3}, "epoch": None, "known": False}, id="nothing-read"),
    pytest.param({"kafka1": {"leaderId": 1, "leaderEpoch": 3}, "kafka2": {"leaderId": 1, "leaderEpoch": 3}},
                 {"leader": 1, "voters": {1, 2, 3}, "epoch": 3, "known": True}, id="voters-from-the-inventory"),
])
def test_kraft_leader(states, expected):
    assert status.kraft_leader(states, VOTERS) == expected


# -- the JSON -----------------------------------------------------------------------------------

def test_as_dict_keys_and_json():
    st = build(ZK1K3, observed(ZK1K3, kafka2="exited:137"),
               Probes(KafkaHealth(brokers=brokers(1, 3), controller=1, partitions=3), zk={"zoo1": "standalone"}))
    d = json.loads(json.dumps(st.as_dict()))
    assert list(d) == ["cluster", "driver", "mode", "kafka_version", "state", "problems", "bootstrap_servers", "security",
                       "kafka", "nodes"]
    assert (d["cluster"], d["driver"], d["mode"], d["kafka_version"], d["state"]) == (
        ZK1K3, "docker", "zookeeper", "3.9.2", "degraded")
    assert set(d["kafka"]) == {"brokers", "controller", "partitions", "under_replicated", "offline", "error",
                               "brokers_expected"}
    assert d["kafka"]["brokers"] == {"1": "127.0.0.1:9092", "3": "127.0.0.1:9094"}
    assert list(d["nodes"][1]) == ["name", "role", "id", "state", "addresses", "health", "healthy", "started_at",
                                   "where"]
    assert d["nodes"][1]["addresses"] == {"host": "127.0.0.1:9092", "network": "kafka1:19092",
                                          "containers": "host.docker.internal:29092"}
