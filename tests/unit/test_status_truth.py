"""Issue 21 as data (no Docker, no JVM; a fake ZooKeeper on a local socket):

* kops's minimal ZooKeeper client reads /brokers/ids and /controller over the wire protocol
  (a session, two reads, closed), says "no node" as such, and fails with ZkError (never a
  guess) on a refused or closed connection; the first answering address of an ensemble wins.
* ``status.build`` in ZooKeeper mode takes the registrations and the controller from what
  ZooKeeper holds: a running broker missing from /brokers/ids is "not registered in
  ZooKeeper" and the cluster degraded (exit 1) whatever the brokers' metadata says; an
  unreadable ZooKeeper is a problem, not "registered"; KRaft says where its answer is from.
* the planner refuses (InputError, before any step) a ZooKeeper client address change
  under running brokers, naming the nodes, the addresses and the way (down, then up); the
  same change of a stopped cluster is planned (every node at once), and a provider that
  reports no addresses (SSH) gets the plan as before.
* the upgrade preflight reads the cluster's finalized metadata.version (FeatureCommand in a
  node) for a move to an older minor and refuses a target below it, naming both; an
  unreadable level is a refusal too; an older minor the cluster's level allows passes.
* the rollback hint names a cause it recognises in the node's log lines.
"""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from kops.bundle import render
from kops.core.errors import InputError
from kops.kafka import health, zookeeper
from kops.kafka.health import KafkaHealth
from kops.model import inventory, topology
from kops.orchestration import preflight as pf
from kops.orchestration import status
from kops.orchestration.status import Probes
from kops.plan import NodeObs, Observed, plan_up

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"


# -- a fake ZooKeeper ------------------------------------------------------------------------------

class FakeZk:
    """A ZooKeeper server of the wire protocol's few calls kops makes: connect, getChildren,
    getData, closeSession. ``tree``: path -> (data, children); ``close_at_connect``: a
    server that is not serving (no quorum) closes the connection at once."""

    def __init__(self, tree: dict[str, tuple[bytes, list[str]]], *, close_at_connect: bool = False):
        self.tree, self.close_at_connect = tree, close_at_connect
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.calls: list[tuple[int, str]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self._session(conn)
                except (OSError, struct.error):
                    pass

    @staticmethod
    def _read(conn) -> bytes:
        def exactly(n):
            out = b""
            while len(out) < n:
                chunk = conn.recv(n - len(out))
                if not chunk:
                    raise OSError("closed")
                out += chunk
            return out
        return exactly(struct.unpack(">i", exactly(4))[0])

    @staticmethod
    def _send(conn, payload: bytes) -> None:
        conn.sendall(struct.pack(">i", len(payload)) + payload)

    def _session(self, conn):
        self._read(conn)   # ConnectRequest
        if self.close_at_connect:
            return
        self._send(conn, struct.pack(">iiq", 0, 6000, 0x1234) + struct.pack(">i", 16) + bytes(16))
        while True:
            req = self._read(conn)
            xid, op = struct.unpack(">ii", req[:8])
            path = ""
            if op in (4, 8):
                size = struct.unpack(">i", req[8:12])[0]
                path = req[12:12 + size].decode()
            self.calls.append((op, path))
            head = lambda err: struct.pack(">iqi", xid, 7, err)   # noqa: E731
            if op == -11:
                self._send(conn, head(0))
                return
            if path not in self.tree:
                self._send(conn, head(-101))
                continue
            data, children = self.tree[path]
            if op == 8:
                body = struct.pack(">i", len(children)) + b"".join(
                    struct.pack(">i", len(c)) + c.encode() for c in children)
            else:
                body = struct.pack(">i", len(data)) + data + bytes(68)   # data, then a Stat
            if op == 8:   # a watch event first (xid -1): a client must skip what is not its answer
                self._send(conn, struct.pack(">iqi", -1, 0, 0) + struct.pack(">iii", 4, 3, 0))
            self._send(conn, head(0) + body)

    def close(self):
        self.sock.close()


CONTROLLER = b'{"version":2,"brokerid":2,"timestamp":"1700000000000","kraftControllerEpoch":-1}'


def test_zookeeper_client_reads_ids_and_controller():
    zk = FakeZk({"/brokers/ids": (b"", ["3", "1", "2"]), "/controller": (CONTROLLER, [])})
    try:
        reg = zookeeper.registrations([zk.address])
    finally:
        zk.close()
    assert (reg.brokers, reg.controller, reg.source) == ([1, 2, 3], 2, f"zookeeper {zk.address}")
    assert zk.calls == [(8, "/brokers/ids"), (4, "/controller"), (-11, "")]   # and the session closed


def test_zookeeper_client_no_nodes_and_no_controller():
    zk = FakeZk({"/brokers/ids": (b"", [])})
    try:
        assert zookeeper.registrations([zk.address]) == zookeeper.Registrations([], None, f"zookeeper {zk.address}")
    finally:
        zk.close()
    none = FakeZk({})
    try:
        assert zookeeper.registrations([none.address]).brokers == []   # no /brokers/ids at all
    finally:
        none.close()


def test_zookeeper_client_fails_closed_and_tries_every_address():
    closed = FakeZk({}, close_at_connect=True)
    good = FakeZk({"/brokers/ids": (b"", ["1"]), "/controller": (CONTROLLER, [])})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"127.0.0.1:{s.getsockname()[1]}"   # bound, not listening: refused
    try:
        with pytest.raises(zookeeper.ZkError, match="not serving"):
            zookeeper.read_registrations(closed.address)
        with pytest.raises(zookeeper.ZkError) as exc:
            zookeeper.registrations([refused, closed.address])
        assert refused in str(exc.value) and closed.address in str(exc.value)
        assert zookeeper.registrations([refused, closed.address, good.address]).brokers == [1]
    finally:
        closed.close()
        good.close()


@pytest.mark.parametrize("raw, want", [(CONTROLLER, 2), (b"", None), (None, None), (b"not json", None),
                                       (b'{"version":1}', None)])
def test_controller_id(raw, want):
    assert zookeeper.controller_id(raw) == want


# -- the status builder ------------------------------------------------------------------------------

ZK1K3 = "zk-single-kafka-multiple"


def topo_of(preset: str) -> topology.Topology:
    return topology.build(inventory.load(preset=preset), CLUSTER_ID)


def observed(preset: str) -> Observed:
    b = render.build(topo_of(preset))
    return Observed(nodes={nb.name: NodeObs(name=nb.name, role=nb.node.role, id=nb.node.id, exists=True,
                                            running=True, state="running", where=nb.container["name"])
                           for nb in b})


def cached(*ids: int) -> KafkaHealth:
    """What the brokers' metadata says: every broker registered, broker 1 the controller."""
    return KafkaHealth(brokers={i: f"127.0.0.1:{9091 + i}" for i in ids}, controller=1, partitions=51)


def zk_build(probes: Probes, preset=ZK1K3):
    t = topo_of(preset)
    return status.build(preset, "docker", t.mode, t.version, t, observed(preset), probes)


def test_status_trusts_zookeeper_over_the_brokers_metadata():
    reg = zookeeper.Registrations([], None, "zookeeper 127.0.0.1:2181")
    st = zk_build(Probes(cached(1, 2, 3), zk={"zoo1": "standalone"}, registrations=reg))
    assert (st.state, st.exit_code) == ("degraded", 1)
    rows = {n.name: (n.health, n.healthy) for n in st.nodes}
    assert rows["kafka1"] == ("not registered in ZooKeeper", False)
    assert rows["kafka2"] == ("not registered in ZooKeeper", False)
    assert "kafka2: running, not registered in ZooKeeper" in st.problems
    assert "kafka: no active controller (ZooKeeper has no /controller)" in st.problems
    d = st.as_dict()["kafka"]
    assert d["brokers"] == {} and d["controller"] is None
    assert d["brokers_in_metadata"] == {"1": "127.0.0.1:9092", "2": "127.0.0.1:9093", "3": "127.0.0.1:9094"}
    assert d["registrations_from"] == "zookeeper 127.0.0.1:2181 (/brokers/ids, /controller)"


def test_status_one_broker_missing_in_zookeeper_and_the_controller_from_it():
    reg = zookeeper.Registrations([1, 3], 3, "zookeeper 127.0.0.1:2181")
    st = zk_build(Probes(cached(1, 2, 3), zk={"zoo1": "standalone"}, registrations=reg))
    rows = {n.name: (n.health, n.healthy) for n in st.nodes}
    assert rows["kafka1"] == ("registered", True)
    assert rows["kafka2"] == ("not registered in ZooKeeper", False)
    assert rows["kafka3"] == ("registered, active controller", True)
    assert st.problems == ["kafka2: running, not registered in ZooKeeper"] and st.controller == 3


def test_status_healthy_when_zookeeper_agrees():
    reg = zookeeper.Registrations([1, 2, 3], 1, "zookeeper 127.0.0.1:2181")
    st = zk_build(Probes(cached(1, 2, 3), zk={"zoo1": "standalone"}, registrations=reg))
    assert (st.state, st.problems) == ("healthy", [])
    assert "brokers_in_metadata" not in st.as_dict()["kafka"]


def test_status_unreadable_zookeeper_is_a_problem_not_registered():
    st = zk_build(Probes(cached(1, 2, 3), zk={"zoo1": None}, registrations_error="127.0.0.1:2181: refused"))
    assert st.state == "degraded"
    assert ("zookeeper: the brokers' registrations (/brokers/ids) could not be read: 127.0.0.1:2181: refused"
            in st.problems)
    assert {n.health for n in st.nodes if n.role == "broker"} == {"registration unknown (ZooKeeper unreadable)"}
    assert not any(n.healthy for n in st.nodes if n.role == "broker")
    assert st.as_dict()["kafka"]["registrations_from"] is None


def test_status_without_a_registration_read_keeps_the_metadata():
    # a migration under way: ZooKeeper is not asked, the brokers' metadata as before
    st = zk_build(Probes(cached(1, 2, 3), zk={"zoo1": "standalone"}))
    assert st.state == "healthy" and "registrations_from" not in st.as_dict()["kafka"]


def test_kraft_status_says_where_registrations_come_from():
    preset = "kraft-multiple"
    t = topo_of(preset)
    q = {"leaderId": 1, "leaderEpoch": 3, "currentVoters": [{"voterId": v} for v in (1, 2, 3)]}
    st = status.build(preset, "docker", "kraft", t.version, t, observed(preset),
                      Probes(cached(1, 2, 3), quorum={"kafka1": q, "kafka2": q, "kafka3": q}))
    assert st.state == "healthy"
    assert st.as_dict()["kafka"]["registrations_from"].startswith("the controller quorum's metadata")


class _Provider:
    def __init__(self, srvr: str):
        self.srvr = srvr

    def zk_srvr(self, node):
        return self.srvr

    def quorum_state(self, node):
        return None


def test_collect_reads_zookeeper_at_the_nodes_host_address(monkeypatch):
    zk = FakeZk({"/brokers/ids": (b"", ["1", "2"]), "/controller": (CONTROLLER, [])})
    t = topo_of(ZK1K3)
    view_of = status.views

    def views(topo, obs):   # zoo1 answers at the fake's address
        return [status.View(v.name, v.role, v.id, {**v.addresses, "host": zk.address} if v.role == "zookeeper"
                            else v.addresses) for v in view_of(topo, obs)]

    monkeypatch.setattr(status, "views", views)
    monkeypatch.setattr(health, "kafka_health", lambda target, timeout: cached(1, 2, 3))
    try:
        probes = status.collect(_Provider("Mode: standalone\n"), t, observed(ZK1K3), "zookeeper")
    finally:
        zk.close()
    assert probes.registrations.brokers == [1, 2] and probes.registrations.controller == 2
    st = status.build(ZK1K3, "docker", "zookeeper", t.version, t, observed(ZK1K3), probes)
    assert st.problems == ["kafka3: running, not registered in ZooKeeper"]


# -- the planner: a ZooKeeper that moves under running brokers ---------------------------------------

def zk_bundle(client_port: int):
    spec = inventory.validate({"name": "moving", "zookeeper": {"nodes": 1, "client_port": client_port},
                               "brokers": {"nodes": 2}}, "test")
    return render.build(topology.build(spec, "n/a"))


def observed_at(port: int, *, running: bool = True, addresses: bool = True) -> Observed:
    """The cluster as Docker reports it with ZooKeeper's client port at ``port``: files of
    another rendering (the old port), the label's address."""
    old = zk_bundle(port)
    nodes = {}
    for nb in old:
        addr = {"host": f"127.0.0.1:{port}", "network": f"{nb.name}:{port}"} if nb.node.role == "zookeeper" else {}
        nodes[nb.name] = NodeObs(name=nb.name, role=nb.node.role, id=nb.node.id, exists=True, running=running,
                                 state="running" if running else "exited", exit_code=None if running else 0,
                                 files=dict(nb.sums), digest=nb.digest, where=nb.container["name"],
                                 addresses=addr if addresses else {})
    return Observed(nodes=nodes)


def test_plan_refuses_a_zookeeper_move_under_running_brokers():
    with pytest.raises(InputError) as exc:
        plan_up(zk_bundle(32281), observed_at(32181))
    e = exc.value
    assert "a ZooKeeper client address changes on a running cluster: zoo1 zoo1:32181 -> zoo1:32281" in e.message
    assert "The running broker(s) kafka1, kafka2 dial the old address" in e.message
    assert "nothing was changed" in e.message
    assert "reconfigure zoo1" in e.details and "reconfigure kafka1" in e.details
    assert "`kops down`, data kept), then `kops up`" in e.hint


def test_plan_of_the_same_move_on_a_stopped_cluster_starts_everything_at_once():
    p = plan_up(zk_bundle(32281), observed_at(32181, running=False))
    assert [sorted(a.node for a in step) for step in p.steps[:1]] == [["kafka1", "kafka2", "zoo1"]]
    assert {a.kind for a in p.steps[0]} == {"reconfigure"}


def test_plan_without_reported_addresses_is_unchanged():
    # SSH reports no addresses: nothing to compare (the plan as before)
    p = plan_up(zk_bundle(32281), observed_at(32181, addresses=False))
    assert p.of("reconfigure")
    assert zookeeper_moves(zk_bundle(32181), observed_at(32181)) == []


def zookeeper_moves(bundle, obs):
    from kops.plan import moved_zookeepers

    return moved_zookeepers(bundle, obs)


# -- the upgrade preflight: the finalized metadata.version ------------------------------------------

DESCRIBE = ("Feature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 1\t"
            "Epoch: 5\nFeature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.4-IV2\t"
            "FinalizedVersionLevel: {level}\tEpoch: 5\n")


class _Exec:
    def __init__(self, code: int, out: str):
        self.code, self.out, self.argv = code, out, None

    def exec(self, node, argv):
        self.node, self.argv = node, argv
        return self.code, self.out


def kraft_spec(version: str):
    return inventory.validate({"name": "kr", "kafka": {"version": version, "mode": "kraft"},
                               "brokers": {"nodes": 3}}, "test")


def kraft_observed(spec) -> Observed:
    t = topology.build(spec, CLUSTER_ID)
    return Observed(nodes={n.name: NodeObs(name=n.name, role=n.role, id=n.id, exists=True, running=n.name != "kafka1",
                                           state="running", cluster_id=CLUSTER_ID) for n in t.nodes})


def test_metadata_version_above_the_target_is_refused_naming_both():
    spec = kraft_spec("4.4.0")
    prov = _Exec(0, DESCRIBE.format(level="4.4-IV2"))
    problem = pf._metadata_version_problem(spec, kraft_observed(spec), prov, "4.4.0", "4.3.2")
    assert problem.startswith("kafka.version: the cluster's metadata.version is 4.4-IV2 (finalized); Kafka 4.3.2 "
                              "supports at most 4.3-IVx")
    # run in a running broker (kafka1 is stopped), against the running brokers, with the client config
    assert prov.node == "kafka2" and pf.FEATURE_MAIN in prov.argv and prov.argv[-1] == "describe"
    assert "kafka2:19093,kafka3:19094" in prov.argv[prov.argv.index("--bootstrap-server") + 1]
    assert prov.argv[prov.argv.index("--command-config") + 1] == "/etc/kafka/client.properties"


def test_metadata_version_the_target_knows_passes():
    spec = kraft_spec("4.4.0")
    assert pf._metadata_version_problem(spec, kraft_observed(spec), _Exec(0, DESCRIBE.format(level="4.3-IV0")),
                                        "4.4.0", "4.3.2") is None


def test_unreadable_metadata_version_is_a_refusal():
    spec = kraft_spec("4.4.0")
    problem = pf._metadata_version_problem(spec, kraft_observed(spec), _Exec(1, "TimeoutException"), "4.4.0", "4.3.2")
    assert "the cluster's finalized metadata.version could not be read" in problem and "TimeoutException" in problem


def test_preflight_reads_the_cluster_only_for_an_older_minor(monkeypatch):
    spec = kraft_spec("4.4.0")
    calls = []
    monkeypatch.setattr(pf, "_metadata_version_problem", lambda *a: calls.append(a[3:]) or "refused: level")
    monkeypatch.setattr(pf.dist, "require", lambda *a, **k: (_ for _ in ()).throw(pf.KopsError("stop here")))
    monkeypatch.setattr(pf, "recorded", lambda name: {})
    obs = kraft_observed(spec)
    obs.meta = {"version": "4.4.0", "mode": "kraft"}
    out = pf.preflight(spec, "4.3.2", obs, None)
    assert calls == [("4.4.0", "4.3.2")] and "refused: level" in out.problems
    calls.clear()
    pf.preflight(spec, "4.4.0", obs, None)
    assert calls == []


@pytest.mark.parametrize("level, minor", [("4.4-IV2", "4.4"), ("3.3-IV3", "3.3"), ("22", None), ("", None)])
def test_level_minor(level, minor):
    assert pf.level_minor(level) == minor


# -- the rollback hint -------------------------------------------------------------------------------

def test_known_cause_of_a_crash():
    log = ("[2026-12-03 17:00:00,000] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)\n"
           "java.lang.IllegalArgumentException: No MetadataVersion with feature level 33. Valid feature levels")
    words = health.known_cause(log)
    assert words.startswith("the cluster's finalized metadata.version (feature level 33) is newer than this Kafka")
    assert health.known_cause("java.lang.UnsupportedClassVersionError: kafka/Kafka").startswith("the node's Java")
    assert health.known_cause("requirement failed: something else") is None


def test_collect_with_no_zookeeper_running_does_not_trust_the_metadata(monkeypatch):
    from dataclasses import replace

    t = topo_of(ZK1K3)
    obs = observed(ZK1K3)
    obs.nodes["zoo1"] = replace(obs.nodes["zoo1"], running=False, state="exited", exit_code=137, crashed=True)
    monkeypatch.setattr(health, "kafka_health", lambda target, timeout: cached(1, 2, 3))
    probes = status.collect(_Provider(""), t, obs, "zookeeper")
    assert probes.registrations is None and probes.registrations_error == "no ZooKeeper node is running"
    st = status.build(ZK1K3, "docker", "zookeeper", t.version, t, obs, probes)
    assert st.state == "degraded" and st.controller is None
    assert {n.health for n in st.nodes if n.role == "broker"} == {"registration unknown (ZooKeeper unreadable)"}


def test_rollback_hint_names_a_recognised_cause(monkeypatch):
    from kops.core.errors import KopsError
    from kops.orchestration import execute, gates
    from kops.plan import Plan, Reconfigure

    class Prov:
        name = "fake"

        def __init__(self, log):
            self.log = log

        def apply(self, step, bundle):
            raise KopsError("kafka1 exited (exit code 1) while starting", details=self.log)

        def rollback(self, nodes, bundle):
            return list(nodes)

        def settle(self, nodes):
            pass

    class Bundle:
        nodes = {"kafka1": type("NB", (), {"node": type("N", (), {"role": "combined"})})()}

    monkeypatch.setattr(gates, "wait", lambda ctx, w, deadline: None)
    p = Plan()
    p.add(Reconfigure(node="kafka1", host="docker"))
    for log, hint in (("java.lang.IllegalArgumentException: No MetadataVersion with feature level 33.",
                       "the cluster's finalized metadata.version (feature level 33) is newer than this Kafka"),
                      ("ERROR some value Kafka refused", "fix the value named in the log lines above")):
        ctx = gates.Context(None, Prov(log), lambda m: None)
        with pytest.raises(KopsError) as exc:
            execute.run(p, ctx, Bundle(), 10**9)
        assert "the previous config was put back" in exc.value.message
        assert exc.value.hint.startswith(hint), exc.value.hint


def test_registrations_by_shell_when_the_client_port_is_not_reachable():
    class Prov:
        def __init__(self):
            self.calls = []

        def exec(self, node, argv):
            self.calls.append((node, argv[-2:]))
            if argv[-2:] == ["ls", "/brokers/ids"]:
                return 0, "Connecting to zoo1:2181\n\nWATCHER::\n\nWatchedEvent state:SyncConnected\n[1, 3]\n"
            return 0, 'WATCHER::\n{"version":2,"brokerid":3,"timestamp":"1700000000000"}\n'

    prov = Prov()
    reg = zookeeper.registrations_by_shell(prov, topo_of(ZK1K3))
    assert (reg.brokers, reg.controller, reg.source) == ([1, 3], 3, "zookeeper-shell in zoo1")
    assert prov.calls == [("zoo1", ["ls", "/brokers/ids"]), ("zoo1", ["get", "/controller"])]

    class Broken(Prov):
        def exec(self, node, argv):
            return 1, "Connection refused"

    with pytest.raises(zookeeper.ZkError, match="exited 1"):
        zookeeper.registrations_by_shell(Broken(), topo_of(ZK1K3))
