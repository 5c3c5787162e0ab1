"""Prometheus metrics as data: the spec's fields (hostile values too), the ports each node
gets, the argv (the one source of truth), the rules files, the scrape config, the parser,
the status figures and the distribution's extras. No engine, no network."""

from __future__ import annotations

import json

import pytest
import yaml

from kops.artifacts import dist
from kops.model import inventory as speclib, topology
from kops.services import metrics
from kops.bundle import render
from kops.orchestration.status import NodeStatus

from specs import CID, refused  # noqa: E402
ZK = "name: m\nkafka: {version: 3.9.2}\nzookeeper: {nodes: 1}\nbrokers: {nodes: 2}\nmetrics: {prometheus: true}\n"
KRAFT = "name: m\nkafka: {version: 4.4.0}\ncontrollers: {nodes: 1}\nbrokers: {nodes: 2}\nmetrics: {prometheus: true}\n"
SSH = """\
name: m
driver: ssh
metrics: {prometheus: true}
hosts:
  vm1: {address: 10.0.0.11, roles: [zookeeper, broker]}
  vm2: {address: 10.0.0.12, roles: [broker]}
"""


def topo(text: str):
    return topology.build(speclib.loads(text, "t"), CID)


# -- spec -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value,fragment", [
    ("0", "greater than or equal to 1"), ("65536", "less than or equal to 65535"), ("-1", "metrics.port"),
    ("'7071; rm -rf /'", "metrics.port"), ("'$(id)'", "metrics.port"), ("7071.5", "metrics.port"),
    ("[7071]", "metrics.port"), ("{a: 1}", "metrics.port"), ("'7071\\n'", "metrics.port"),
])
def test_hostile_metrics_port_is_refused(value, fragment):
    refused(f"metrics: {{prometheus: true, port: {value}}}\n", fragment)


@pytest.mark.parametrize("text,fragment", [
    ("metrics: {prometheus: maybe}\n", "metrics.prometheus"),
    ("metrics: {prometheus: true, prot: 7071}\n", "metrics.prot: unknown key"),
    ("metrics: {prometheus: true, rules: /etc/passwd}\n", "metrics.rules: unknown key"),
    ("metrics: [prometheus]\n", "metrics"),
])
def test_bad_metrics_section_is_refused(text, fragment):
    refused(text, fragment)


def test_metrics_port_that_clashes_with_another_port_is_refused():
    # kafka1's metrics port would be 9092, its EXTERNAL port (Docker: one engine, one host)
    refused(ZK.replace("prometheus: true", "prometheus: true, port: 9091"), "port 9092", "kafka1")


# -- ports and addresses ----------------------------------------------------------------------

def test_docker_ports_run_from_the_base_across_every_node():
    t = topo(ZK)
    assert {n.name: n.ports["metrics"] for n in t.nodes} == {"zoo1": 7071, "kafka1": 7072, "kafka2": 7073}
    assert t.addresses(t.node("kafka2"))["metrics"] == "127.0.0.1:7073"
    assert t.addresses(t.node("zoo1"))["metrics"] == "127.0.0.1:7071"
    k = topo(KRAFT)
    assert {n.name: n.ports["metrics"] for n in k.nodes} == {"controller1": 7071, "kafka1": 7072, "kafka2": 7073}
    assert k.addresses(k.node("controller1")) == {"metrics": "127.0.0.1:7071"}


def test_ssh_ports_count_per_host_and_bind_the_host_address():
    t = topo(SSH)
    assert {n.name: (n.host_key, n.ports["metrics"]) for n in t.nodes} == {
        "zoo1": ("vm1", 7071), "kafka1": ("vm1", 7072), "kafka2": ("vm2", 7071)}
    argv = render.build(t).nodes["kafka2"].argv
    assert "-javaagent:/opt/kops/kafka_2.13-3.9.2/agents/jmx_prometheus_javaagent-1.0.1.jar=10.0.0.12:7071:" \
           "/etc/kops/m/kafka2/metrics.yml" in argv
    assert t.addresses(t.node("kafka2"))["metrics"] == "10.0.0.12:7071"


def test_metrics_off_changes_nothing():
    t = topo(ZK.replace("metrics: {prometheus: true}\n", ""))
    b = render.build(t)
    assert all("metrics" not in n.ports for n in t.nodes)
    assert not any(a.startswith("-javaagent") for nb in b for a in nb.argv)
    assert not any(p.endswith(metrics.RULES_FILE) for nb in b for p in nb.files)
    assert "prometheus.yml" not in render.export(t)


# -- argv, files, container ----------------------------------------------------------------------

def test_the_agent_is_in_every_nodes_argv_before_the_main_class():
    b = render.build(topo(ZK))
    for name, nb in b.nodes.items():
        agent = [a for a in nb.argv if a.startswith("-javaagent:")]
        port = nb.node.ports["metrics"]
        assert agent == [f"-javaagent:/opt/kafka/agents/{metrics.AGENT_JAR}=0.0.0.0:{port}:/etc/kafka/metrics.yml"]
        assert nb.argv.index(agent[0]) < nb.argv.index("-cp")
        assert f"/etc/kafka/{metrics.RULES_FILE}" in nb.files
        # published on the publish address only, and labelled for status without a spec
        assert nb.container["ports"][f"{port}/tcp"] == ["127.0.0.1", port]
        assert nb.container["labels"]["io.kops.metrics"] == f"127.0.0.1:{port}"


def test_the_systemd_unit_carries_the_same_argv():
    b = render.build(topo(SSH))
    unit = b.nodes["zoo1"].files["/etc/systemd/system/kops-m-zoo1.service"]
    assert f"-javaagent:/opt/kops/kafka_2.13-3.9.2/agents/{metrics.AGENT_JAR}=10.0.0.11:7071:" in unit


@pytest.mark.parametrize("inv", [ZK, KRAFT])
def test_rules_files_parse_and_name_the_standard_metrics(inv):
    b = render.build(topo(inv))
    for nb in b:
        rules = yaml.safe_load(nb.files[f"{nb.layout.conf_dir}/{metrics.RULES_FILE}"])
        assert rules["lowercaseOutputName"] is True
        text = json.dumps(rules)
        if nb.node.role == "zookeeper":
            assert "org.apache.ZooKeeperService" in text and "StandaloneServer_port" in text
            continue
        # under-replicated/offline partitions, active controllers, ISR shrinks/expands, rates, latencies
        for needle in ("ReplicaManager, name=(\\\\w+)><>Value", "ReplicaManager, name=(\\\\w+)PerSec><>Count",
                       "KafkaController, name=(\\\\w+)><>Value", "BrokerTopicMetrics", "RequestsPerSec",
                       "TotalTimeMs", "thPercentile"):
            assert needle in text, needle
        assert all({"pattern", "name", "type"} <= set(r) for r in rules["rules"])


def test_prometheus_yml_lists_every_node():
    files = render.export(topo(ZK))
    prom = yaml.safe_load(files["prometheus.yml"])
    job = prom["scrape_configs"][0]
    assert job["job_name"] == "kops-m" and job["metrics_path"] == "/metrics"
    assert [(c["targets"], c["labels"]["node"], c["labels"]["role"]) for c in job["static_configs"]] == [
        (["127.0.0.1:7071"], "zoo1", "zookeeper"), (["127.0.0.1:7072"], "kafka1", "broker"),
        (["127.0.0.1:7073"], "kafka2", "broker")]
    compose = yaml.safe_load(files["docker-compose.yml"])
    assert "127.0.0.1:7072:7072/tcp" in [str(p) for p in compose["services"]["kafka1"]["ports"]]


# -- parsing and figures ------------------------------------------------------------------------

SAMPLE = """\
# HELP kafka_server_replicamanager_underreplicatedpartitions x
# TYPE kafka_server_replicamanager_underreplicatedpartitions gauge
kafka_server_replicamanager_underreplicatedpartitions 3.0
kafka_server_brokertopicmetrics_bytesin_total{topic="a"} 10
kafka_server_brokertopicmetrics_bytesin_total{topic="b",x="}"} 5
kafka_controller_kafkacontroller_activecontrollercount 1.0
broken line without value
jvm_memory_used_bytes{area="heap"} 1.5E7
"""


def test_parse_sums_samples_by_name():
    v = metrics.parse(SAMPLE)
    assert v[metrics.UNDER_REPLICATED] == 3.0
    assert v["kafka_server_brokertopicmetrics_bytesin_total"] == 15
    assert v["jvm_memory_used_bytes"] == 1.5e7
    assert "broken" not in v


def test_figures_of_a_node_that_does_not_answer_are_an_error_not_a_failure():
    got = metrics.collect({"kafka1": "127.0.0.1:1"}, timeout=0.5)
    assert set(got["kafka1"]) == {"error"}


def test_status_json_has_metrics_only_when_on():
    assert "metrics" not in NodeStatus("kafka1", "broker", 1, "running").as_dict()
    d = NodeStatus("kafka1", "broker", 1, "running", metrics={"under_replicated": 0}).as_dict()
    assert d["metrics"] == {"under_replicated": 0}


# -- the distribution's extras --------------------------------------------------------------

def test_jar_base_names():
    assert dist._base("jetty-util-9.4.57.v20241219.jar") == "jetty-util"
    assert dist._base("zstd-jni-1.5.6-4.jar") == "zstd-jni"
    assert dist._base("kafka_2.13-3.9.2.jar") == "kafka_2.13"
    assert dist._base("connect-mirror-client-4.3.1.jar") == "connect-mirror-client"


def test_extras_present_needs_connect_file_connector_and_agent(tmp_path):
    (tmp_path / "libs").mkdir()
    for a in dist.CONNECT_LIBS:
        (tmp_path / "libs" / f"{a}-3.9.2.jar").write_text("x")
    assert not dist._extras_present(tmp_path, "3.9.2")
    (tmp_path / "plugins" / "connect-file").mkdir(parents=True)
    (tmp_path / "plugins" / "connect-file" / "connect-file-3.9.2.jar").write_text("x")
    assert not dist._extras_present(tmp_path, "3.9.2")
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / metrics.AGENT_JAR).write_text("x")
    assert dist._extras_present(tmp_path, "3.9.2")


def test_a_kept_tarball_of_another_distribution_state_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_CACHE_DIR", str(tmp_path / "cache"))
    d = tmp_path / "kafka_2.13-3.9.2"
    (d / "libs").mkdir(parents=True)
    (d / "libs" / "kafka_2.13-3.9.2.jar").write_text("x")
    got = dist.Distribution(d, "3.9.2", "local")
    first, _ = dist.verified_tarball(got, tmp_path / "tb")
    again, _ = dist.verified_tarball(got, tmp_path / "tb")
    assert first.stat().st_mtime_ns == again.stat().st_mtime_ns       # reused: same distribution
    (d / "agents").mkdir()
    (d / "agents" / metrics.AGENT_JAR).write_text("agent")            # extras added since
    third, _ = dist.verified_tarball(got, tmp_path / "tb")
    import tarfile

    with tarfile.open(third) as tar:
        assert f"kafka_2.13-3.9.2/agents/{metrics.AGENT_JAR}" in tar.getnames()
