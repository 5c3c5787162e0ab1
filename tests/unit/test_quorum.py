"""The dynamic KRaft quorum as data: which quorum a cluster gets and keeps, the storage
format of initial and joining controllers, the planner policy for controllers added or
removed (typed actions, order, refusals), the quorum tool's output. No engine, no network."""

from __future__ import annotations

import pytest

from kops.providers.docker import DockerProvider
from kops.providers.ssh import SSHProvider

from kops.model import inventory as speclib, topology
from kops.orchestration import lifecycle
from kops.plan import quorum
from kops.bundle import render
from kops.core.errors import InputError
from kops.plan import NodeObs, Observed, plan_up
from specs import CID

SPLIT = ("name: q\nkafka: {version: 4.4.0, mode: kraft}\ncontrollers: {nodes: %d}\nbrokers: {nodes: 2}\n")


def bundle(controllers: int, quorum_kind: str | None = None, driver_extra: str = ""):
    spec = speclib.loads(SPLIT % controllers + driver_extra, "t")
    return render.build(topology.build(spec, CID, quorum=quorum_kind))


def running(b, names=None, *, quorum_kind="dynamic", extra=()) -> Observed:
    nodes = {}
    for nb in b:
        if names is None or nb.name in names:
            nodes[nb.name] = NodeObs(nb.name, nb.node.role, nb.node.id, exists=True, running=True, state="running",
                                     files=dict(nb.sums), digest=nb.digest, formatted=True, cluster_id=CID,
                                     quorum=quorum_kind, where=f"q-{nb.name}")
    for name, role, nid in extra:
        nodes[name] = NodeObs(name, role, nid, exists=True, running=True, state="running", formatted=True,
                              cluster_id=CID, quorum=quorum_kind, where=f"q-{name}")
    return Observed(nodes=nodes, controller=101)


def test_new_clusters_of_41_and_later_are_dynamic_older_static():
    assert topology.build(speclib.loads(SPLIT % 3, "t"), CID).quorum == "dynamic"
    old = speclib.loads(SPLIT.replace("4.4.0", "3.9.2") % 3, "t")
    assert topology.build(old, CID).quorum == "static"
    zk = speclib.load(preset="zk-single-kafka-single")
    assert topology.build(zk, "n/a").quorum == ""


def test_an_existing_cluster_keeps_its_quorum():
    spec = speclib.loads(SPLIT % 3, "t")
    assert lifecycle.quorum_of(spec, Observed()) == "dynamic"
    static = Observed(nodes={"controller1": NodeObs("controller1", "controller", 101, exists=True, quorum="static")})
    assert lifecycle.quorum_of(spec, static) == "static"
    mixed = Observed(nodes={"a": NodeObs("a", "controller", 101, exists=True, quorum="dynamic"),
                            "b": NodeObs("b", "broker", 1, exists=True, quorum="static")})
    assert lifecycle.quorum_of(spec, mixed) == "static"   # never flipped to dynamic by a config change


def test_initial_controllers_are_formatted_with_the_voters_joiners_and_brokers_with_none():
    b = bundle(3)
    ctl = b.nodes["controller2"]
    i = ctl.format_argv.index("--initial-controllers")
    voters = ctl.format_argv[i + 1].split(",")
    assert [v.split("@")[0] for v in voters] == ["101", "102", "103"]
    host, port, dirid = voters[1].split("@")[1].split(":")
    assert (host, port) == ("controller2", "19193") and dirid == topology.directory_id(CID, "controller2")
    assert len(dirid) == 22 and dirid != "AAAAAAAAAAAAAAAAAAAAAA"
    assert ctl.join_format_argv[-1] == "--no-initial-controllers"
    assert b.nodes["kafka1"].format_argv[-1] == "--no-initial-controllers"
    static = bundle(3, "static").nodes["controller2"]
    assert "--initial-controllers" not in static.format_argv and "--no-initial-controllers" not in static.format_argv


def shape(p):
    return [[(a.kind, a.node) for a in step] for step in p.steps]


def test_added_controllers_join_after_they_started_then_the_rest_rolls(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    b3 = bundle(3)
    obs = running(bundle(1), quorum_kind="dynamic")
    p = quorum.extend(plan_up(b3, obs), b3, obs, DockerProvider.info)
    steps = shape(p)
    fmt = [a for a in p.actions if a.kind == "format"]
    assert {a.node for a in fmt} == {"controller2", "controller3"} and all(a.join for a in fmt)
    create = steps.index([("create", "controller2"), ("create", "controller3")])
    adds = [i for i, s in enumerate(steps) if s and s[0][0] == "add-controller"]
    assert [steps[i][0][1] for i in adds] == ["controller2", "controller3"]
    assert adds[0] == create + 2          # right after the new nodes were awaited
    rolls = [i for i, s in enumerate(steps) if s and s[0][0] == "reconfigure"]
    assert rolls and min(rolls) > max(adds)   # the others roll onto the new bootstrap list afterwards
    assert "caught up as an observer" in next(a for a in p.actions if a.kind == "add-controller").describe()


def test_leaving_controllers_are_removed_from_the_voters_one_at_a_time_leader_last(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    b1 = bundle(1)
    obs = running(b1, extra=[("controller2", "controller", 102), ("controller3", "controller", 103)])
    obs.controller = 102
    p = quorum.extend(plan_up(b1, obs), b1, obs, DockerProvider.info)
    head = shape(p)[:6]
    assert head == [[("remove-controller", "controller3")], [("stop", "controller3")], [("remove", "controller3")],
                    [("remove-controller", "controller2")], [("stop", "controller2")], [("remove", "controller2")]]
    assert p.summary["controller2"][0] == "remove"


def test_a_static_quorum_refuses_controller_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    b3 = bundle(3, "static")
    obs = running(bundle(1, "static"), quorum_kind="static")
    with pytest.raises(InputError) as ei:
        quorum.extend(plan_up(b3, obs), b3, obs, DockerProvider.info)
    assert "static KRaft quorum" in ei.value.message and "adding controller2, controller3" in ei.value.message


def test_removing_from_a_stopped_quorum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    b1 = bundle(1)
    obs = running(b1, extra=[("controller2", "controller", 102), ("controller3", "controller", 103)])
    obs.nodes = {n: NodeObs(o.name, o.role, o.id, exists=True, running=False, state="exited", formatted=True,
                            quorum="dynamic") for n, o in obs.nodes.items()}
    with pytest.raises(InputError, match="not running"):
        quorum.extend(plan_up(b1, obs), b1, obs, DockerProvider.info)


def test_an_unfinished_add_is_resumed(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    b3 = bundle(3)
    obs = running(b3)
    quorum.note_pending("q", ["controller3"])
    p = quorum.extend(plan_up(b3, obs), b3, obs, DockerProvider.info)
    assert shape(p) == [[("add-controller", "controller3")]]
    quorum.note_pending("q", [])
    assert quorum.extend(plan_up(b3, obs), b3, obs, DockerProvider.info).steps == []


def test_ssh_removes_controllers_left_out(tmp_path, monkeypatch):
    """Over SSH the leaving controllers are observed from kops's record of the nodes it
    placed (kops.store.state.placed): removed from the voters, stopped, removed, as on Docker."""
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    ssh = ("driver: ssh\nhosts:\n  vm1: {address: 10.0.0.11, roles: [controller, broker]}\n"
           "  vm2: {address: 10.0.0.12, roles: [controller, broker]}\n  vm3: {address: 10.0.0.13, roles: [controller]}\n")
    b1 = bundle(1, driver_extra=ssh)
    quorum.note_known("q", ["controller1", "controller2", "controller3"])
    assert SSHProvider.info.sees_unlisted_nodes
    obs = running(b1, extra=[("controller2", "controller", 102), ("controller3", "controller", 103)])
    p = quorum.extend(plan_up(b1, obs), b1, obs, SSHProvider.info)
    assert [s[0] for s in shape(p)[:3]] == [("remove-controller", "controller2"), ("stop", "controller2"),
                                            ("remove", "controller2")]


def test_the_quorum_tools_output_is_read():
    out = """ClusterId:              Vu3A09eFSaGcoH_CnF188Q
LeaderId:               101
LeaderEpoch:            3
CurrentVoters:          [{"id": 101, "directoryId": "qg9lgBjiXYiNUIzLus5iHQ", "endpoints": ["CONTROLLER://controller1:19192"]}, {"id": 102, "directoryId": "QqOTLfmvw6gHzT5ITMttjw", "endpoints": ["CONTROLLER://controller2:19193"]}]
CurrentObservers:       [{"id": 103, "directoryId": "UdAOe9LM0KTDYpehaMpntQ"}, {"id": 1, "directoryId": "p2wXZD7zRGsUvXdPzGoZRw"}]
NodeId	DirectoryId           	LogEndOffset	Lag	LastFetchTimestamp	LastCaughtUpTimestamp	Status
101   	qg9lgBjiXYiNUIzLus5iHQ	48          	0  	1796166886095     	1796166886095        	Leader
103   	UdAOe9LM0KTDYpehaMpntQ	40          	8  	1796166885850     	1796166885850        	Observer
"""
    q = quorum.parse(out)
    assert q["leader"] == 101
    assert q["voters"] == {101: "qg9lgBjiXYiNUIzLus5iHQ", 102: "QqOTLfmvw6gHzT5ITMttjw"}
    assert set(q["observers"]) == {103, 1} and q["lag"] == {101: 0, 103: 8}


def test_a_fast_profile_roll_settles_for_less():
    from kops import plan as planmod

    spec = speclib.loads(SPLIT % 1 + "profile: fast\n", "t")
    b = render.build(topology.build(spec, CID))
    obs = running(b)
    stale = {n: o.__class__(**{**o.__dict__, "files": {p: "0" * 64 for p in o.files}}) for n, o in obs.nodes.items()}
    obs.nodes = stale
    waits = [a for a in plan_up(b, obs).actions if a.kind == "wait" and a.gate == "kafka-ready"]
    assert waits and {w.settle for w in waits} == {planmod.FAST_SETTLE}
