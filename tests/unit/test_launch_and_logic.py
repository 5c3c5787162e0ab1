"""Pure logic: launcher command lines, ZooKeeper srvr parsing, the host-side download
script, the kept cluster id. No engine, no JVM."""

from __future__ import annotations

import pytest

from kops.kafka import health
from kops.bundle import launch
from kops.store import state
from kops.model import inventory as speclib
from kops.providers.ssh import _download_script


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


def test_container_command_is_an_argv_with_prestart_steps():
    l = launch.Launch("4.4.0")
    plain = launch.container_command(l, "kafka")
    assert plain == l.argv("kafka"), "a broker's container runs the JVM argv, no shell"
    standalone = launch.container_command(l, "kafka", cluster_id="MkU3OEVBNTcwNTJENDM2Qk")
    assert standalone[:2] == ["sh", "-c"] and standalone[3:] == ["kops-node", *l.argv("kafka")]
    assert "[ -f /var/lib/kafka/data/meta.properties ] ||" in standalone[2]
    assert "StorageTool format -t MkU3OEVBNTcwNTJENDM2Qk" in standalone[2]
    assert standalone[2].endswith('exec "$@"')
    zl = launch.Launch("3.9.2", data_dir="/var/lib/zookeeper")
    zk = launch.container_command(zl, "zookeeper")
    assert zk[2] == '/bin/cp /etc/kafka/myid /var/lib/zookeeper/myid && exec "$@"'
    assert zk[4:] == zl.argv("zookeeper")


@pytest.mark.parametrize("word, quoted", [
    ("-Xmx1g", "-Xmx1g"),
    ("/opt/kafka/libs/*", "/opt/kafka/libs/*"),
    ("a b", '"a b"'),
    ("50%", "50%%"),
    ("$HOME", '"$$HOME"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
])
def test_systemd_quoting(word, quoted):
    assert launch.systemd_quote(word) == quoted


@pytest.mark.parametrize("reply, mode", [
    ("Zookeeper version: 3.8.4\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n", "follower"),
    ("Mode: standalone\n", "standalone"),
    ("Mode: leader", "leader"),
    ("This ZooKeeper instance is not currently serving requests\n", None),
    ("", None),
])
def test_zk_mode_parsing(reply, mode):
    assert health.zk_mode(reply) == mode


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
