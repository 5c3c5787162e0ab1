"""Pure logic: launcher command lines, ZooKeeper srvr parsing, rolling-restart order, the
host-side download script, SHA handling of the state file. No engine, no JVM."""

from __future__ import annotations

import pytest

from kops import health, launch, rolling, state
from kops.drivers.base import ClusterStatus, NodeStatus
from kops.drivers.ssh import _download_script
from kops.errors import InputError
from kops import spec as speclib


@pytest.mark.parametrize("version, flag, name", [
    ("3.9.2", "-Dlog4j.configuration=file:/etc/kafka/log4j.properties", "log4j.properties"),
    ("4.4.0", "-Dlog4j2.configurationFile=/etc/kafka/log4j2.yaml", "log4j2.yaml"),
])
def test_log_config_follows_the_kafka_major(version, flag, name):
    l = launch.Launch(version, heap="256m")
    argv = l.argv("kafka")
    assert flag in argv and launch.log_config_name(version) == name
    assert argv[:3] == ["java", "-Xmx256m", "-Xms256m"]
    assert argv[-4:] == ["-cp", "/opt/kafka/libs/*", "kafka.Kafka", "/etc/kafka/server.properties"]
    assert "-XX:+UseG1GC" in argv and any(a.startswith("-Xlog:gc*:file=/var/log/kafka/") for a in argv)


def test_zookeeper_and_format_lines():
    l = launch.Launch("3.9.2", home="/opt/k", conf_dir="/c", log_dir="/l")
    assert l.argv("zookeeper")[-2:] == ["org.apache.zookeeper.server.quorum.QuorumPeerMain", "/c/zoo.cfg"]
    fmt = l.format_storage("MkU3OEVBNTcwNTJENDM2Qk")
    assert fmt[-7:] == ["kafka.tools.StorageTool", "format", "-t", "MkU3OEVBNTcwNTJENDM2Qk",
                        "-c", "/c/server.properties", "--ignore-formatted"]


def test_jmx_flags_when_asked():
    opts = launch.Launch("3.9.2", jmx_port=9999, jmx_host="kafka1").jvm_opts("kafka")
    assert "-Dcom.sun.management.jmxremote.port=9999" in opts
    assert "-Dcom.sun.management.jmxremote.rmi.port=9999" in opts
    assert "-Djava.rmi.server.hostname=kafka1" in opts


def test_container_command_formats_kraft_once_and_places_myid():
    l = launch.Launch("4.4.0")
    kraft = launch.container_command(l, "kafka", cluster_id="MkU3OEVBNTcwNTJENDM2Qk")[2]
    assert kraft.startswith("set -f; . /etc/kafka/jvm.env")
    assert "StorageTool format -t MkU3OEVBNTcwNTJENDM2Qk" in kraft and "--ignore-formatted" in kraft
    assert kraft.endswith("exec java $KOPS_JVM_OPTS -cp '/opt/kafka/libs/*' kafka.Kafka /etc/kafka/server.properties")
    zk = launch.container_command(launch.Launch("3.9.2"), "zookeeper")[2]
    assert "cp /etc/kafka/myid /var/lib/zookeeper/myid" in zk and "StorageTool" not in zk
    broker_zk_mode = launch.container_command(launch.Launch("3.9.2"), "kafka")[2]
    assert "StorageTool" not in broker_zk_mode


def test_env_file_is_one_quoted_assignment():
    text = launch.Launch("3.9.2", heap="1g").env_file("zookeeper")
    assert text.startswith('KOPS_JVM_OPTS="-Xmx1g -Xms1g ') and text.endswith('"\n')
    assert "zookeeper-gc.log" in text and text.count("\n") == 1


@pytest.mark.parametrize("reply, mode", [
    ("Zookeeper version: 3.8.4\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n", "follower"),
    ("Mode: standalone\n", "standalone"),
    ("Mode: leader", "leader"),
    ("This ZooKeeper instance is not currently serving requests\n", None),
    ("", None),
])
def test_zk_mode_parsing(reply, mode):
    assert health.zk_mode(reply) == mode


def _status(controller: int, roles: dict[str, tuple[str, int]]) -> ClusterStatus:
    nodes = [NodeStatus(n, r, i, "running") for n, (r, i) in roles.items()]
    return ClusterStatus("c", "docker", "kraft", "4.4.0", nodes, {"controller": controller}, "healthy")


def test_rolling_order_brokers_then_controllers_active_controller_last():
    st = _status(102, {"controller1": ("controller", 101), "controller2": ("controller", 102),
                       "controller3": ("controller", 103), "kafka1": ("broker", 1),
                       "kafka2": ("broker", 2), "zoo1": ("zookeeper", 1)})
    assert [n.name for n in rolling.order(st)] == ["kafka1", "kafka2", "controller1", "controller3", "controller2"]


def test_rolling_order_combined_and_zk_mode_controller_last():
    st = _status(1, {"kafka1": ("combined", 1), "kafka2": ("combined", 2), "kafka3": ("combined", 3)})
    assert [n.name for n in rolling.order(st)] == ["kafka2", "kafka3", "kafka1"]
    assert [n.name for n in rolling.order(st, ["kafka1", "kafka3"])] == ["kafka3", "kafka1"]


def test_rolling_unknown_node_is_an_input_error():
    st = _status(1, {"kafka1": ("broker", 1), "zoo1": ("zookeeper", 1)})
    with pytest.raises(InputError) as err:
        rolling.order(st, ["kafka9", "zoo1"])
    assert err.value.exit_code == 2 and "kafka9" in err.value.message and "zoo1" in err.value.message


def test_download_script_checks_sha512_and_cleans_up():
    script = _download_script("https://mirror.example/kafka_2.13-3.9.2.tgz", "a" * 128, "/opt/kops/k.tgz")
    assert "curl -fsSL -o /opt/kops/k.tgz https://mirror.example/kafka_2.13-3.9.2.tgz" in script
    assert "wget -q -O /opt/kops/k.tgz" in script and "urllib.request" in script
    assert f"echo '{'a' * 128}  /opt/kops/k.tgz' | sha512sum -c --status" in script
    assert script.count("rm -f /opt/kops/k.tgz") == 2 and "SHA-512 mismatch" in script


def test_cluster_id_is_kept_and_found_id_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    spec = speclib.loads("name: kept\nkafka: {version: 4.4.0}\n")
    first = state.cluster_id(spec)
    assert len(first) == 22 and not first.startswith("-")
    assert state.cluster_id(spec) == first, "a second render must not make a new id"
    assert state.cluster_id(spec, found="AAAAAAAAAAAAAAAAAAAAAA") == "AAAAAAAAAAAAAAAAAAAAAA"
    assert state.cluster_id(spec) == "AAAAAAAAAAAAAAAAAAAAAA", "the id found on the cluster is kept"
    state.forget("kept")
    assert state.cluster_id(spec) not in (first, "AAAAAAAAAAAAAAAAAAAAAA")


def test_download_only_for_ssh_and_needs_a_checksum():
    with pytest.raises(speclib.SpecError) as err:
        speclib.loads("kafka: {download: {url: 'https://x/k.tgz', sha512: '" + "b" * 128 + "'}}\n")
    assert "kafka.download: only used with driver: ssh" in err.value.message
    with pytest.raises(speclib.SpecError) as err:
        speclib.loads("kafka: {download: {url: 'https://x/k.tgz'}}\n")
    assert "kafka.download.sha512: required and missing" in err.value.message
