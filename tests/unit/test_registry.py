"""The schema registry as data: the spec's fields (hostile values too), its nodes, the
rendered properties and argv, the planner's order (its topics before its first start, after
Kafka), the status of a registry node. No engine, no network."""

from __future__ import annotations

import pytest

from kops.model import inventory as speclib, topology
from kops.services import registry
from kops.bundle import render
from kops.kafka.health import KafkaHealth
from kops.plan import StorageTopics, plan_down, plan_up
from kops.orchestration.status import Probes, build as build_status
from test_plan import observe, shape

from specs import CID, props, refused, topo  # noqa: E402

BASE = "name: c\nkafka: {version: 3.9.2}\nzookeeper: {nodes: 1}\nbrokers: {nodes: 1}\n"


@pytest.mark.parametrize("section,fragment", [
    ("{nodes: 0}", "schema_registry.nodes"), ("{nodes: 4}", "schema_registry.nodes"),
    ("{nodes: '1; id'}", "schema_registry.nodes"), ("{heap: '160m -XX:OnError=id'}", "schema_registry.heap"),
    ("{port: 0}", "schema_registry.port"), ("{port: '8081 && id'}", "schema_registry.port"),
    ("{compatibility: 'BACKWARD; rm -rf /'}", "schema_registry.compatibility"),
    ("{compatibility: backward}", "schema_registry.compatibility"),
    ("{config: {bad key: 1}}", "schema_registry.config"),
    ("{config: {a.b: \"x\\nquarkus.http.port=1\"}}", "schema_registry.config.a.b"),
    ("{replicas: 2}", "schema_registry.replicas: unknown key"), ("[1]", "schema_registry"),
])
def test_hostile_registry_values_are_refused(section, fragment):
    refused(f"{BASE}schema_registry: {section}\n", fragment)


@pytest.mark.parametrize("key", registry.MANAGED)
def test_managed_registry_keys_are_refused(key):
    refused(f"{BASE}schema_registry: {{config: {{{key}: x}}}}\n",
            f"schema_registry.config.{key}: kops sets this registry key")
    refused(f"{BASE}schema_registry: {{}}\nnodes: {{registry1: {{config: {{{key}: x}}}}}}\n",
            f"nodes.registry1.config.{key}")


def test_unsupported_combinations_are_refused_for_now():
    # a secure cluster is fine now (tests/unit/test_secure_services_render.py); its security keys are kops's
    refused(f"{BASE}schema_registry: {{config: {{apicurio.kafka.common.security.protocol: SSL}}}}\n"
            "security: {tls: true}\n", "kops sets the registry's Kafka security settings itself")
    refused(BASE.replace("{version: 3.9.2}", "{version: 3.9.2, image: 'apache/kafka:3.9.2'}")
            + "schema_registry: {}\n",
            "needs kops's own images")
    refused(f"{BASE}schema_registry: {{port: 8083}}\nconnect: {{}}\n", "port 8083")


def test_nodes_ports_and_addresses():
    t = topo(f"{BASE}schema_registry: {{nodes: 2, port: 18081}}\nmetrics: {{prometheus: true}}\n")
    regs = t.registries
    assert [n.name for n in regs] == ["registry1", "registry2"]
    assert [n.ports for n in regs] == [{"rest": 18081}, {"rest": 18082}]   # no metrics agent on the registry
    assert t.rest_address(regs[1]) == "127.0.0.1:18082"
    assert registry.url(t) == "http://127.0.0.1:18081/apis/ccompat/v7"


def test_properties_argv_and_container():
    t = topo(f"{BASE.replace('nodes: 1}', 'nodes: 3}')}schema_registry: {{compatibility: FULL, config: "
             "{apicurio.ccompat.max-subjects: 50, x.unicode: 'ü = \\\\ #'}}\n")
    node = t.node("registry1")
    files = render.node_files(t, node)
    assert list(files) == [registry.PROPERTIES]   # no log4j: it logs to the node's console
    p = props(files[registry.PROPERTIES])
    assert p["apicurio.storage.kind"] == "kafkasql"
    assert p["apicurio.kafkasql.bootstrap.servers"] == t.internal_bootstrap == "kafka1:19092,kafka2:19093,kafka3:19094"
    assert p["apicurio.kafkasql.topic"] == "kafkasql-journal"
    assert p["quarkus.http.port"] == "8081" and p["quarkus.http.host"] == "0.0.0.0"
    assert p["apicurio.rules.global.compatibility"] == "FULL"
    assert p["apicurio.ccompat.max-subjects"] == "50"
    assert p["x.unicode"] == "\\u00fc = \\\\\\\\ #"   # escaped as java.util.Properties reads it: one line, one value
    c = render.container_plan(t, node)
    assert c["image"] == registry.IMAGE and c["depends_on"] == ["kafka1", "kafka2", "kafka3"]
    assert c["command"][-2:] == ["-jar", f"/opt/registry/{registry.RUNNER}"]
    assert "-Xmx160m" in c["command"] and not any(a.startswith("-XX:SharedArchiveFile") for a in c["command"])
    assert c["ports"] == {"8081/tcp": ["127.0.0.1", 8081]}
    assert c["labels"]["io.kops.role"] == "registry" and c["labels"]["io.kops.rest"] == "127.0.0.1:8081"
    assert "KAFKA_HOME" not in c["environment"]


def test_topics_are_made_before_the_first_start_after_kafka():
    p = plan_up(render.build(topology.build(speclib.load(preset="kraft-full-stack"), CID)),
                observe("kraft-full-stack", {}, missing={"docker": ("network kops-kraft-full-stack",)}))
    steps = shape(p)
    gates = [s[0][1] for s in steps if s[0][0] == "wait"]
    assert gates == ["kafka-ready", "connect-ready", "registry-ready"]
    kinds = [s[0][0] for s in steps]
    topics = kinds.index("topics")
    assert steps[topics + 1] == [("create", "connect1"), ("create", "registry1")]   # both at once, cold
    assert topics > steps.index([("wait", "kafka-ready", (), 0.0)])
    action = next(a for a in p.actions if isinstance(a, StorageTopics))
    assert action.topics == ("kafkasql-journal", "kafkasql-snapshots")
    assert "retention forever" in action.describe()


def test_a_registry_added_to_a_running_cluster_comes_after_its_topics():
    p = plan_up(render.build(topology.build(speclib.load(preset="full-stack"), CID)),
                observe("full-stack", {"*": "ok", "registry1": None}))
    assert shape(p) == [[("topics", None)], [("create", "registry1")], [("wait", "registry-ready", (), 0.0)]]


def test_a_killed_registry_alone_is_started_without_touching_its_topics():
    p = plan_up(render.build(topology.build(speclib.load(preset="full-stack"), CID)),
                observe("full-stack", {"*": "ok", "registry1": "crashed"}))
    assert shape(p) == [[("start", "registry1")], [("wait", "registry-ready", (), 0.0)]]


def test_registry_stops_first():
    order = [[a.node for a in step] for step in plan_down(observe("full-stack", {"*": "ok"})).steps]
    assert order[0] == ["connect1", "registry1"]


def _status(answer: dict):
    t = topology.build(speclib.load(preset="full-stack"), CID)
    probes = Probes(KafkaHealth(brokers={1: "127.0.0.1:9092"}, controller=1, partitions=3),
                    zk={"zoo1": "standalone"}, connect={"connect1": {"connectors": {}}}, registry={"registry1": answer})
    return build_status("full-stack", "docker", "zookeeper", "3.9.2", t, observe("full-stack", {"*": "ok"}), probes)


def test_status_shows_the_registry():
    st = _status({"subjects": 2, "compatibility": "BACKWARD"})
    assert st.state == "healthy", st.problems
    row = next(n for n in st.nodes if n.name == "registry1")
    assert row.healthy and row.health == "REST ok, 2 subjects, BACKWARD"
    d = st.as_dict()["schema_registry"]
    assert d["url"] == "http://127.0.0.1:8081/apis/ccompat/v7"
    assert d["nodes"]["registry1"]["subjects"] == 2


def test_a_registry_not_ready_is_a_problem():
    st = _status({"error": "not ready (HTTP 503: KafkaSqlStorage)"})
    assert st.state == "degraded"
    assert any(p.startswith("registry1:") and "not ready" in p for p in st.problems), st.problems


SSH = ("name: s\nkafka: {version: 3.9.2}\nzookeeper: {nodes: 1}\nbrokers: {nodes: 1}\ndriver: ssh\n"
       "schema_registry: {nodes: 1}\nhosts:\n  vm1: {address: 10.0.0.11, roles: [zookeeper, broker, %s]}\n")


def test_over_ssh_a_host_needs_the_registry_role():
    refused(SSH % "connect", "1 registry node(s) need 1 host(s) with role registry")


def test_over_ssh_the_unit_runs_the_pushed_application_on_the_hosts_address():
    t = topo(SSH % "registry")
    node = t.node("registry1")
    lay = render.layout(t, node)
    assert lay.home == f"/opt/kops/{registry.HOME_NAME}" and lay.conf_dir == "/etc/kops/s/registry1"
    unit = render.systemd_unit(t, node)
    assert f"-jar /opt/kops/{registry.HOME_NAME}/{registry.RUNNER}" in unit
    assert "-Dquarkus.config.locations=file:/etc/kops/s/registry1/registry.properties" in unit
    p = props(render.node_files(t, node)[registry.PROPERTIES])
    assert p["quarkus.http.host"] == "10.0.0.11" and p["apicurio.kafkasql.bootstrap.servers"] == "10.0.0.11:19092"
    assert t.rest_address(node) == "10.0.0.11:8081"
    assert render.kafka_home(t) == "/opt/kops/kafka_2.13-3.9.2"   # the host's Kafka tools stay Kafka's
