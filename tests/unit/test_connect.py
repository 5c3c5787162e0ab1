"""Kafka Connect as data: the spec's fields (hostile values too), the workers' topology, the
rendered properties and argv, the planner's order (workers after Kafka, stopped first),
the status of workers and connectors, connector files. No engine, no network."""

from __future__ import annotations

import json

import pytest

from kops.services import connect
from kops.model import inventory as speclib, topology
from kops.bundle import render
from kops.kafka.health import KafkaHealth
from kops.plan import NodeObs, plan_down, plan_restart, plan_up
from kops.orchestration.status import Probes, build as build_status
from test_plan import observe, shape

from specs import CID, props, refused, topo  # noqa: E402
BASE = "name: c\nkafka: {version: 3.9.2}\nzookeeper: {nodes: 1}\nbrokers: {nodes: 1}\n"


# -- spec ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("section,fragment", [
    ("{nodes: 0}", "connect.nodes"), ("{nodes: 10}", "connect.nodes"), ("{nodes: '2; rm -rf /'}", "connect.nodes"),
    ("{heap: 1t}", "connect.heap"), ("{heap: '512m -XX:+Evil'}", "connect.heap"),
    ("{rest_port: 0}", "connect.rest_port"), ("{rest_port: 70000}", "connect.rest_port"),
    ("{rest_port: '8083 && id'}", "connect.rest_port"),
    ("{group: Bad_Group}", "connect.group"), ("{group: 'a b'}", "connect.group"), ("{group: '$(id)'}", "connect.group"),
    ("{plugins: ['$(curl evil)']}", "connect.plugins.0"), ("{plugins: ['a:b']}", "connect.plugins.0"),
    ("{plugins: ['/etc/passwd']}", "connect.plugins.0"), ("{plugins: 'a:b:1'}", "connect.plugins"),
    ("{config: {bad key: 1}}", "connect.config"), ("{config: {a.b: \"x\\ny\"}}", "connect.config.a.b"),
    ("{config: {a.b: [1]}}", "connect.config.a.b"), ("{workers: 2}", "connect.workers: unknown key"),
    ("[1]", "connect"),
])
def test_hostile_connect_values_are_refused(section, fragment):
    refused(f"{BASE}connect: {section}\n", fragment)


@pytest.mark.parametrize("key", ["bootstrap.servers", "group.id", "plugin.path", "listeners",
                                 "offset.storage.topic", "rest.advertised.host.name",
                                 "config.storage.replication.factor"])
def test_managed_connect_keys_are_refused(key):
    refused(f"{BASE}connect: {{config: {{{key}: x}}}}\n", f"connect.config.{key}: kops sets this Connect key")
    refused(f"{BASE}connect: {{}}\nnodes: {{connect1: {{config: {{{key}: x}}}}}}\n", f"nodes.connect1.config.{key}")


def test_security_keys_on_a_secure_cluster_are_kops_s_and_plugins_must_exist(tmp_path):
    # a secure cluster is fine now (tests/unit/test_secure_services_render.py); its security keys are kops's
    refused(f"{BASE}connect: {{config: {{producer.security.protocol: SSL}}}}\nsecurity: {{tls: true}}\n",
            "kops sets the workers' security settings itself")
    refused(f"{BASE}connect: {{plugins: [{tmp_path}/missing.jar]}}\n", "connect.plugins.0", "no such file")
    refused(f"{BASE}connect: {{plugins: [a:b:1, a:b:1]}}\n", "listed twice")


def test_plugins_get_folders_on_plugin_path_and_a_manifest(tmp_path):
    jar = tmp_path / "my-smt.jar"
    jar.write_bytes(b"PK not really a jar")
    t = topo(f"{BASE}connect: {{plugins: [io.debezium:debezium-connector-postgres:3.6.1.Final, {jar}]}}\n")
    files = render.node_files(t, t.node("connect1"))
    p = props(files["connect-distributed.properties"])
    assert p["plugin.path"] == "/opt/kafka/plugins,/etc/kafka/plugins"
    assert p["plugin.discovery"] == "hybrid_warn"   # extra plugins may lack ServiceLoader manifests
    lines = files["plugins.txt"].splitlines()[1:]
    assert lines[0] == "debezium-connector-postgres-3.6.1.Final\tio.debezium:debezium-connector-postgres:3.6.1.Final"
    assert lines[1].startswith(f"my-smt\t{jar}\tsha256=")
    # a changed local jar changes the rendered manifest: the workers are reconfigured
    jar.write_bytes(b"PK another build")
    again = render.node_files(t, t.node("connect1"))["plugins.txt"]
    assert again != files["plugins.txt"]
    plain = render.node_files(topo(f"{BASE}connect: {{}}\n"), topo(f"{BASE}connect: {{}}\n").node("connect1"))
    assert "plugins.txt" not in plain and props(plain["connect-distributed.properties"])["plugin.discovery"] == "service_load"


def test_rest_port_clash_is_refused():
    refused(f"{BASE}connect: {{rest_port: 9092}}\n", "port 9092", "connect1 (rest)")


def test_ssh_needs_hosts_with_the_connect_role():
    ssh = ("name: c\ndriver: ssh\nconnect: {nodes: 2}\nhosts:\n  vm1: {address: 10.0.0.11, roles: [zookeeper, broker]}\n"
           "  vm2: {address: 10.0.0.12, roles: [connect]}\n")
    refused(ssh, "2 connect node(s) need 2 host(s) with role connect, and 1 have it")
    t = topo(ssh.replace("nodes: 2", "nodes: 1"))
    w = t.node("connect1")
    assert (w.host_key, w.ports["rest"], t.addresses(w)) == ("vm2", 8083, {"host": "10.0.0.12:8083"})
    b = render.build(t).nodes["connect1"]
    assert props(b.files["/etc/kops/c/connect1/connect-distributed.properties"])["listeners"] == "http://10.0.0.12:8083"
    unit = b.files["/etc/systemd/system/kops-c-connect1.service"]
    assert "org.apache.kafka.connect.cli.ConnectDistributed /etc/kops/c/connect1/connect-distributed.properties" in unit


# -- topology and rendering -------------------------------------------------------------------

def test_workers_ports_and_addresses():
    t = topo(BASE + "connect: {nodes: 3}\n")
    assert [(n.name, n.role, n.ports) for n in t.connects] == [
        ("connect1", "connect", {"rest": 8083}), ("connect2", "connect", {"rest": 8084}),
        ("connect3", "connect", {"rest": 8085})]
    assert t.addresses(t.node("connect2")) == {"host": "127.0.0.1:8084", "network": "connect2:8084"}
    assert not any(n.is_kafka for n in t.connects)
    assert t.bootstrap_servers == "127.0.0.1:9092"        # workers are not brokers


@pytest.mark.parametrize("brokers,rf", [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_internal_topics_replication_is_min_3_brokers(brokers, rf):
    text = BASE.replace("brokers: {nodes: 1}", f"brokers: {{nodes: {brokers}}}") + "connect: {}\n"
    b = render.build(topo(text)).nodes["connect1"]
    p = props(b.files["/etc/kafka/connect-distributed.properties"])
    assert {k: p[k] for k in p if k.endswith("replication.factor")} == {
        "config.storage.replication.factor": str(rf), "offset.storage.replication.factor": str(rf),
        "status.storage.replication.factor": str(rf)}


def test_worker_properties_argv_and_container():
    text = BASE + "connect: {group: etl, config: {offset.flush.interval.ms: 500, x.y: 'a=b #c ü'}}\n"
    b = render.build(topo(text)).nodes["connect1"]
    p = props(b.files["/etc/kafka/connect-distributed.properties"])
    assert p["bootstrap.servers"] == "kafka1:19092" and p["group.id"] == "etl"
    assert (p["config.storage.topic"], p["offset.storage.topic"], p["status.storage.topic"]) == (
        "etl-configs", "etl-offsets", "etl-status")
    assert p["listeners"] == "http://0.0.0.0:8083" and p["rest.advertised.host.name"] == "connect1"
    assert p["plugin.path"] == "/opt/kafka/plugins"
    assert p["offset.flush.interval.ms"] == "500"            # the inventory's value wins over kops's default
    assert p["x.y"] == "a=b #c \\u00fc"                      # a value stays one value (Properties escapes)
    assert b.argv[-2:] == ["org.apache.kafka.connect.cli.ConnectDistributed",
                           "/etc/kafka/connect-distributed.properties"]
    assert "-Xmx384m" in b.argv and not any("SharedArchiveFile" in a for a in b.argv)
    assert b.format_argv is None and b.stop_grace == 30
    c = b.container
    assert c["ports"] == {"8083/tcp": ["127.0.0.1", 8083]} and c["depends_on"] == ["kafka1"]
    assert c["labels"]["io.kops.role"] == "connect" and c["labels"]["io.kops.rest"] == "127.0.0.1:8083"


# -- planner ----------------------------------------------------------------------------------------

def test_workers_start_after_kafka_is_ready_and_are_awaited():
    p = plan_up(render.build(topology.build(speclib.load(preset="full-stack"), CID)),
                observe("full-stack", {}, missing={"docker": ("network kops-full-stack",)}))
    steps = shape(p)
    gates = [s[0][1] for s in steps if s[0][0] == "wait"]
    assert gates == ["zookeeper-quorum", "kafka-ready", "connect-ready", "registry-ready"]
    # Connect and the registry start together once Kafka is ready, the registry's topics first
    assert steps[-4:] == [[("topics", None)], [("create", "connect1"), ("create", "registry1")],
                          [("wait", "connect-ready", (), 0.0)], [("wait", "registry-ready", (), 0.0)]]
    assert steps.index([("topics", None)]) > steps.index([("wait", "kafka-ready", (), 0.0)])


def test_a_killed_worker_alone_is_started_and_awaited():
    p = plan_up(render.build(topology.build(speclib.load(preset="kraft-full-stack"), CID)),
                observe("kraft-full-stack", {"*": "ok", "connect1": "crashed"}))
    assert shape(p) == [[("start", "connect1")], [("wait", "connect-ready", (), 0.0)]]
    p = plan_up(render.build(topology.build(speclib.load(preset="kraft-full-stack"), CID)),
                observe("kraft-full-stack", {"*": "ok", "connect1": "crashed", "registry1": "crashed"}))
    assert shape(p) == [[("start", "connect1"), ("start", "registry1")], [("wait", "connect-ready", (), 0.0)],
                        [("wait", "registry-ready", (), 0.0)]]


def test_workers_stop_before_the_brokers_and_are_not_in_a_default_restart():
    obs = observe("full-stack", {"*": "ok"})
    order = [[a.node for a in step] for step in plan_down(obs).steps]
    assert order == [["connect1", "registry1"], ["kafka1"], ["zoo1"]]
    nodes = [NodeObs("zoo1", "zookeeper", 1, exists=True, running=True),
             NodeObs("kafka1", "broker", 1, exists=True, running=True),
             NodeObs("connect1", "connect", 1, exists=True, running=True)]
    assert [a.node for a in plan_restart(nodes, 1).actions if a.kind == "restart"] == ["kafka1"]


# -- status ------------------------------------------------------------------------------------------

def _status(probes_connect: dict, state: str = "ok"):
    t = topology.build(speclib.load(preset="full-stack"), CID)
    obs = observe("full-stack", {"*": "ok", "connect1": state})
    probes = Probes(KafkaHealth(brokers={1: "127.0.0.1:9092"}, controller=1, partitions=3),
                    zk={"zoo1": "standalone"}, connect=probes_connect,
                    registry={"registry1": {"subjects": 0, "compatibility": "BACKWARD"}})
    return build_status("full-stack", "docker", "zookeeper", "3.9.2", t, obs, probes)


def test_status_shows_workers_and_connectors():
    running = {"connectors": {"src": {"state": "RUNNING", "type": "source", "worker": "connect1:8083",
                                      "tasks": ["RUNNING"]}}, "version": "3.9.2"}
    st = _status({"connect1": running})
    assert st.state == "healthy", st.problems
    w = next(n for n in st.nodes if n.name == "connect1")
    assert (w.health, w.healthy, w.addresses["host"]) == ("REST ok, 1 connector", True, "127.0.0.1:8083")
    d = json.loads(json.dumps(st.as_dict()))
    assert d["connect"]["workers"]["connect1"] == {"state": "running", "rest": "127.0.0.1:8083"}
    assert d["connect"]["connectors"]["src"]["state"] == "RUNNING"


def test_a_failed_task_and_a_silent_worker_are_problems():
    failed = {"connectors": {"sink": {"state": "RUNNING", "type": "sink", "worker": "w", "tasks": ["FAILED"]}}}
    st = _status({"connect1": failed})
    assert st.state == "degraded"
    assert any("connector sink is RUNNING, task(s) 0 FAILED" in p for p in st.problems), st.problems
    st = _status({"connect1": {"error": "ConnectTimeout"}})
    assert any(p.startswith("connect1:") and "REST not answering" in p for p in st.problems), st.problems


def test_a_crashed_worker_is_named():
    st = _status({}, state="crashed")
    assert st.state == "degraded"
    assert any(p.startswith("connect1: crashed") for p in st.problems), st.problems


def test_no_connect_key_without_workers():
    t = topology.build(speclib.load(preset="zk-single-kafka-single"), CID)
    obs = observe("zk-single-kafka-single", {"*": "ok"})
    st = build_status("x", "docker", "zookeeper", "3.9.2", t, obs,
                      Probes(KafkaHealth(brokers={1: "a:1"}, controller=1), zk={"zoo1": "standalone"}))
    assert "connect" not in st.as_dict()


# -- connector files and names ---------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ('{"name": "a", "config": {"connector.class": "FileStreamSource", "tasks.max": 1, "x": true}}',
     ("a", {"connector.class": "FileStreamSource", "tasks.max": "1", "x": "true"})),
    ('{"name": "b", "connector.class": "FileStreamSink", "topics": "t"}',
     ("b", {"connector.class": "FileStreamSink", "topics": "t"})),
])
def test_connector_files(tmp_path, text, expected):
    f = tmp_path / "c.json"
    f.write_text(text)
    assert connect.load_connector(str(f)) == expected


@pytest.mark.parametrize("text", ["", "nope", "[]", '{"config": {"connector.class": "x"}}', '{"name": "a"}',
                                  '{"name": "a", "config": {"connector.class": "x", "k": {"n": 1}}}',
                                  '{"name": 3, "config": {"connector.class": "x"}}'])
def test_bad_connector_files_are_input_errors(tmp_path, text):
    from kops.core.errors import InputError

    f = tmp_path / "c.json"
    f.write_text(text)
    with pytest.raises(InputError):
        connect.load_connector(str(f))


def test_connector_names_are_one_path_segment():
    assert connect._path("a/b ?#..") == "a%2Fb%20%3F%23.."
    from kops.core.errors import InputError

    for bad in ("", "a\nb", "x" * 250):
        with pytest.raises(InputError):
            connect._path(bad)


def test_a_failed_connector_does_not_hold_the_healthy_gate():
    """`kops restart` waits for a healthy cluster after each node: a connector the user has to
    fix is reported by the status but does not hold the roll; a crashed worker does."""
    from kops.orchestration import gates
    from kops.plan import Wait

    class Provider:
        name = "docker"

        def __init__(self, obs, answers):
            self.obs, self.answers = obs, answers

        def observe(self, bundle):
            return self.obs

    t = topology.build(speclib.load(preset="full-stack"), CID)
    failed = {"connectors": {"sink": {"state": "FAILED", "type": "sink", "worker": "w", "tasks": []}}}

    def run(state, answers):
        import kops.orchestration.status as status_mod

        real = status_mod.collect
        status_mod.collect = lambda *a, **k: Probes(KafkaHealth(brokers={1: "127.0.0.1:9092"}, controller=1),
                                                    zk={"zoo1": "standalone"}, connect=answers,
                                                    registry={"registry1": {"subjects": 0}})
        try:
            probe, _ = gates.healthy(gates.Context(t, Provider(observe("full-stack", {"*": "ok", "connect1": state}),
                                                               answers), print), Wait(gate="healthy"))
            return probe()
        finally:
            status_mod.collect = real

    st = run("ok", {"connect1": failed})
    assert st.state == "degraded" and any("connector sink is FAILED" in p for p in st.problems)
    from kops.kafka.health import NotYet

    with pytest.raises(NotYet, match="connect1"):
        run("crashed", {})
