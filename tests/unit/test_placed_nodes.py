"""kops's record of the nodes the SSH provider placed (kops.store.state.placed, placed.json):
what is kept (never a secret), how it is merged and forgotten, which records are refused,
and what the provider makes of it: nodes the inventory no longer lists are observed from it
(a retired ZooKeeper shows in the status), and removing one removes its unit and folders.
No hosts: the provider's connection is a stand-in that answers the host fact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kops.bundle import render
from kops.model import inventory as speclib, topology
from kops.orchestration import status
from kops.plan import Remove, Stop
from kops.providers.ssh import PlacedNode, SSHProvider, valid_record
from kops.store import state
from specs import CID

KEY = str(Path(__file__).resolve())   # any file: the key's path is what is recorded, never its content
HOSTS = ("driver: ssh\nhosts:\n"
         "  vm1: {address: 10.0.0.11, user: admin, port: 2222, key: " + KEY + ", sudo: true, roles: [%s]}\n"
         "  vm2: {address: 10.0.0.12, roles: [%s]}\n  vm3: {address: 10.0.0.13, roles: [%s]}\n")


def zk_spec():
    roles = ("zookeeper, broker",) * 3
    return speclib.loads("name: mig\nkafka: {version: 3.9.2, mode: zookeeper}\nzookeeper: {nodes: 3}\n"
                         "brokers: {nodes: 3}\n" + HOSTS % roles, "t")


def kraft_spec(brokers: int = 3, extra: str = ""):
    roles = ("controller, broker",) * 3
    return speclib.loads(f"name: mig\nkafka: {{version: 3.9.2, mode: kraft}}\ncontrollers: {{nodes: 3}}\n"
                         f"brokers: {{nodes: {brokers}}}\n" + extra + HOSTS % roles, "t")


def bundle_of(spec, creds=None):
    topo = topology.build(spec, CID if spec.mode == "kraft" else "n/a",
                          quorum="static" if spec.mode == "kraft" else None)
    return render.build(topo, creds)


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))


def test_the_record_is_merged_forgotten_and_goes_with_the_cluster(tmp_path):
    assert state.placed("c") == {}
    state.note_placed("c", {"a": {"node": "a", "host": "vm1", "junk": "x"}})
    state.note_placed("c", {"b": {"node": "b", "host": "vm2"}})
    assert state.placed("c") == {"a": {"node": "a", "host": "vm1"}, "b": {"node": "b", "host": "vm2"}}
    state.forget_placed("c", ["a"])
    assert list(state.placed("c")) == ["b"]
    state.forget_placed("c", ["b"])
    path = tmp_path / "clusters" / "c" / "placed.json"
    assert not path.exists()   # an empty record is no file
    state.note_placed("c", {"b": {"node": "b", "host": "vm2"}})
    state.forget("c")          # `kops down --purge`
    assert not path.exists() and state.placed("c") == {}


def test_a_node_record_has_what_it_takes_to_find_it_again_and_no_secret():
    spec = kraft_spec(extra="security: {tls: true, sasl: scram-sha-512}\n")
    topo = topology.build(spec, CID, quorum="static")
    creds = render.Credentials("CA-PEM", {n.name: ("KEY-PEM-s3cret", "CERT-PEM") for n in topo.nodes if n.is_kafka},
                               "admin-s3cret-passw0rd", "SCRAM-SHA-512")
    b = render.build(topo, creds)
    assert any("admin-s3cret-passw0rd" in t for t in b.nodes["kafka1"].files.values())   # the node has it ...
    p = SSHProvider(spec, log=lambda _: None)
    rec = p._record(b.nodes["kafka1"], b)
    assert set(rec) <= set(state.PLACED_KEYS)
    assert (rec["node"], rec["role"], rec["id"], rec["host"]) == ("kafka1", "broker", 1, "vm1")
    assert (rec["address"], rec["user"], rec["port"], rec["key"], rec["sudo"]) == ("10.0.0.11", "admin", 2222,
                                                                                    KEY, True)
    assert rec["unit"] == "kops-mig-kafka1.service"
    assert rec["folders"] == ["/etc/kops/mig/kafka1", "/var/lib/kops/mig/kafka1", "/var/log/kops/mig/kafka1"]
    assert valid_record("mig", rec) is None
    text = json.dumps(rec)   # ... the record does not
    assert "s3cret" not in text and "PEM" not in text and "password" not in text.lower()


def test_records_that_name_foreign_paths_are_not_used():
    spec = zk_spec()
    b = bundle_of(spec)
    rec = SSHProvider(spec, log=lambda _: None)._record(b.nodes["zoo2"], b)
    assert valid_record("mig", rec) is None
    assert "unit" in valid_record("mig", {**rec, "unit": "ssh.service"})
    assert "folders" in valid_record("mig", {**rec, "folders": ["/etc"]})
    assert "not the node's own" in valid_record("mig", {**rec, "data_dir": "/var/lib/kops/mig/zoo2/../../.."})
    assert "is not kops-other-zoo2.service" in valid_record("other", rec)
    assert valid_record("mig", {"node": "zoo2"}) == "a field is missing"
    logs = []
    state.note_placed("mig", {"zoo2": {**rec, "folders": ["/"]}, "zoo1": SSHProvider(spec, log=None)._record(
        b.nodes["zoo1"], b)})
    p = SSHProvider(spec, log=logs.append)
    assert list(p._records()) == ["zoo1"] and "zoo2" in logs[0] and "not used" in logs[0]


# -- the provider, on a stand-in connection -------------------------------------------------------

class FakeHost:
    def __init__(self, name, facts):
        self.name, self.facts, self.asked = name, facts, None

    def get_fact(self, _cls, **kw):
        self.asked = kw
        return self.facts


class FakeState:
    def __init__(self, hosts):
        self.hosts = hosts
        self.failed_hosts = set()
        self.inventory = self

    def get_host(self, name):
        return self.hosts[name]


def facts(units: dict[str, str]) -> dict:
    """A host's fact: ``units`` unit -> ActiveState (each unit file in place)."""
    from kops.artifacts import tools

    return {"sums": {f"/etc/systemd/system/{u}": "x" for u in units}, "java": "/usr/bin/java", "dist": True,
            "extras": True, "user": True, "pkg": "apt", "tools": tools.fingerprint("3.9.2"), "metas": {},
            "units": {u: {"LoadState": "loaded", "ActiveState": a, "SubState": "running" if a == "active" else "dead",
                          "Result": "success"} for u, a in units.items()}}


def migrated(monkeypatch, *, zk_states=("inactive",) * 3):
    """A cluster migrated to KRaft: its ZooKeeper nodes placed by kops (the record) and
    stopped, the KRaft inventory's nodes running; the provider on a stand-in connection."""
    zk = zk_spec()
    zb = bundle_of(zk)
    SSHProvider(zk, log=lambda _: None)._note_placed(list(zb), zb)
    kr = kraft_spec()
    kb = bundle_of(kr)
    hosts = {}
    for i, h in enumerate(("vm1", "vm2", "vm3")):
        units = {nb.unit: "active" for nb in kb if nb.node.host_key == h}
        units[f"kops-mig-zoo{i + 1}.service"] = zk_states[i]
        hosts[h] = FakeHost(h, facts(units))
    p = SSHProvider(kr, log=lambda _: None)
    p.state = FakeState(hosts)
    return p, kb, hosts


def test_observe_sees_the_placed_nodes_the_inventory_no_longer_lists(monkeypatch):
    assert SSHProvider.info.sees_unlisted_nodes
    p, kb, hosts = migrated(monkeypatch)
    obs = p.observe(kb)
    zoo = obs.nodes["zoo1"]
    assert (zoo.role, zoo.id, zoo.where, zoo.exists, zoo.running) == ("zookeeper", 1, "vm1", True, False)
    assert zoo.addresses["host"] == "10.0.0.11:2181"
    assert {"controller1", "kafka1", "zoo2", "zoo3"} <= set(obs.nodes)
    assert "kops-mig-zoo1.service" in hosts["vm1"].asked["units"]
    # the inventory's nodes found in place are recorded too (clusters placed before the record)
    assert {"controller1", "kafka3", "zoo3"} <= set(state.placed("mig"))


def test_a_retired_zookeeper_shows_in_the_status_over_ssh(monkeypatch):
    p, kb, _ = migrated(monkeypatch)
    obs = p.observe(kb)
    st = status.build("mig", "ssh", "kraft", "3.9.2", kb.topo, obs, None)
    rows = {n.name: n for n in st.nodes}
    assert rows["zoo1"].health == "retired (migrated to KRaft)" and rows["zoo1"].healthy
    assert rows["zoo1"].where == "vm1" and rows["zoo1"].state == "inactive"
    assert not any("zoo" in pr for pr in st.problems), st.problems


def test_a_placed_node_gone_from_its_host_is_dropped_from_the_record(monkeypatch):
    p, kb, hosts = migrated(monkeypatch)
    del hosts["vm2"].facts["sums"]["/etc/systemd/system/kops-mig-zoo2.service"]
    hosts["vm2"].facts["units"]["kops-mig-zoo2.service"]["LoadState"] = "not-found"
    obs = p.observe(kb)
    assert "zoo2" not in obs.nodes and "zoo2" not in state.placed("mig") and "zoo1" in state.placed("mig")


def test_stop_and_remove_of_an_unlisted_node_use_the_record(monkeypatch):
    p, kb, _ = migrated(monkeypatch, zk_states=("active", "inactive", "inactive"))
    p.observe(kb)
    nb = p._nb("zoo1")
    assert isinstance(nb, PlacedNode) and nb.unit == "kops-mig-zoo1.service" and nb.node.host_key == "vm1"
    ops, notes = [], []

    def add(host, label, op, **kw):
        ops.append((host, label, kw))

    p._ops(Stop(node="zoo1", host="vm1"), kb, add, notes)
    assert ops[0][0] == "vm1" and ops[0][2] == {"service": "kops-mig-zoo1.service", "running": False}
    ops.clear()
    p._ops(Remove(node="zoo1", host="vm1"), kb, add, notes)
    removed = {kw.get("path") for _h, _l, kw in ops if kw.get("present") is False}
    assert removed == {"/etc/systemd/system/kops-mig-zoo1.service", "/etc/kops/mig/zoo1", "/var/lib/kops/mig/zoo1",
                       "/var/log/kops/mig/zoo1"}
    assert all(h == "vm1" for h, _l, _kw in ops)
    # a host where nodes of the cluster stay keeps the cluster's folders
    ops.clear()
    p._tidy_ops([Remove(node="zoo1", host="vm1")], kb, add, notes)
    assert [label for _h, label, _kw in ops] == ["systemd daemon-reload"]


def test_a_host_left_with_no_node_of_the_cluster_is_tidied(monkeypatch):
    p, _kb, _ = migrated(monkeypatch)
    kb2 = bundle_of(kraft_spec(brokers=2))   # kafka3 (vm3) leaves; controller3 stays on vm3
    p.observe(kb2)
    ops, notes = [], []

    def add(host, label, op, **kw):
        ops.append((host, label, kw))

    gone = [Remove(node="kafka3", host="vm3"), Remove(node="zoo3", host="vm3")]
    p._tidy_ops(gone, kb2, add, notes)
    assert [label for _h, label, _kw in ops] == ["systemd daemon-reload"]   # controller3 stays on vm3
    ops.clear()
    state.forget_placed("mig", ["controller3"])
    kb1 = bundle_of(speclib.loads("name: mig\nkafka: {version: 3.9.2, mode: kraft}\ncontrollers: {nodes: 1}\n"
                                  "brokers: {nodes: 2}\n" + HOSTS % ("controller, broker", "broker", "broker"),
                                  "t"))
    p._tidy_ops(gone, kb1, add, notes)
    labels = [label for _h, label, _kw in ops]
    assert "remove the empty folders of cluster mig" in labels and "remove the login shells' profile" in labels
    assert any(label.startswith("remove /opt/kops/kafka_2.13-3.9.2 unless used") for label in labels)
    assert notes[-1] == ("vm3", "vm3: no node of cluster mig is left there: its folders and profile removed")


def test_a_broker_left_out_is_drained_stopped_unregistered_and_removed_over_ssh(monkeypatch):
    """The planner's scale policy on what the SSH provider observes: kafka3 (vm3) is known
    from the record only, and leaves as it would on Docker; its actions carry its host."""
    from kops.kafka import reassign
    from kops.plan import plan_up, scale

    kr3, kr2 = kraft_spec(brokers=3), kraft_spec(brokers=2)
    b3, b2 = bundle_of(kr3), bundle_of(kr2)
    SSHProvider(kr3, log=lambda _: None)._note_placed(list(b3), b3)
    hosts = {h: FakeHost(h, facts({nb.unit: "active" for nb in b3 if nb.node.host_key == h}))
             for h in ("vm1", "vm2", "vm3")}
    p = SSHProvider(kr2, log=lambda _: None)
    p.state = FakeState(hosts)
    obs = p.observe(b2)
    assert obs.nodes["kafka3"].running and obs.nodes["kafka3"].where == "vm3"
    monkeypatch.setattr(reassign, "current_assignment",
                        lambda client: {("orders", i): [1 + i % 3, 1 + (i + 1) % 3] for i in range(6)})
    plan = scale.extend(plan_up(b2, obs), b2, obs, client="x", info=p.info)
    kinds = [[(a.kind, a.node, a.host) for a in step] for step in plan.steps]
    assert [k[0][0] for k in kinds[:4]] == ["reassign", "stop", "unregister", "remove"], kinds
    assert kinds[1][0][1:] == ("kafka3", "vm3") and kinds[3][0][1:] == ("kafka3", "vm3")
    assert all(3 not in m.new for m in plan.steps[0][0].moves)
