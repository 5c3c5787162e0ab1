"""Kafka's tools in every node (kops.tools): the table against the real jars, and the
launchers run for real by /bin/sh with a stand-in java that prints the argv it gets."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from kops.artifacts import dist, tools

VERSIONS = ["3.9.2", "4.4.0"]


def _classes(version: str) -> set[str]:
    d = dist.cached(version)
    if d is None:
        pytest.fail(f"Kafka {version} is not in the cache ({dist.dist_root()}): run scripts/setup.sh", pytrace=False)
    out = set()
    for jar in (d.path / "libs").glob("*.jar"):
        with zipfile.ZipFile(jar) as z:
            out |= {n[:-6].replace("/", ".") for n in z.namelist() if n.endswith(".class")}
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_every_main_class_is_in_the_jars(version):
    have = _classes(version)
    missing = {t.name: t.main for t in tools.table(version).values() if t.main not in have}
    assert not missing, f"Kafka {version}'s jars lack: {missing}"
    assert len(tools.table(version)) >= 30


def test_the_classes_kafkas_own_scripts_run():
    """What bin/*.sh of 3.9 and 4.4 run (the classes that moved in between)."""
    t3, t4 = tools.table("3.9.2"), tools.table("4.4.0")
    expect3 = {"kafka-topics": "org.apache.kafka.tools.TopicCommand",
               "kafka-console-producer": "kafka.tools.ConsoleProducer",
               "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
               "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
               "kafka-broker-api-versions": "kafka.admin.BrokerApiVersionsCommand",
               "kafka-configs": "kafka.admin.ConfigCommand", "kafka-acls": "kafka.admin.AclCommand",
               "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
               "kafka-dump-log": "kafka.tools.DumpLogSegments", "kafka-storage": "kafka.tools.StorageTool",
               "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
               "zookeeper-shell": "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka"}
    expect4 = {"kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
               "kafka-broker-api-versions": "org.apache.kafka.tools.BrokerApiVersionsCommand",
               "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
               "kafka-acls": "org.apache.kafka.tools.AclCommand",
               "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
               "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer"}
    assert {k: t3[k].main for k in expect3} == expect3
    assert {k: t4[k].main for k in expect4} == expect4
    # ZooKeeper's tools exist on 3.x only; 4.x's share-group tools only there
    assert "zookeeper-shell" not in t4 and "kafka-mirror-maker" not in t4 and "kafka-share-groups" in t4
    assert "kafka-share-groups" not in t3 and t3["zookeeper-shell"].args == ("-server",)
    # older 3.x lines: their own scripts' classes
    assert tools.table("3.6.2")["kafka-topics"].main == "kafka.admin.TopicCommand"
    assert tools.table("4.2.0")["kafka-dump-log"].main == "kafka.tools.DumpLogSegments"


@pytest.mark.parametrize("version", VERSIONS)
def test_files_names_and_fingerprint(version):
    items = {it.path: it for it in tools.items(version)}
    for name in ("kafka-topics", "kafka-console-producer", "kafka-consumer-groups", "kafka-run-class"):
        assert items[f"bin/{name}.sh"].mode == 0o755 and items[f"bin/{name}.sh"].text.startswith("#!/bin/sh\n")
        assert items[f"bin/{name}"].link == f"{name}.sh"
    assert items[tools.MARKER].text.strip() == tools.fingerprint(version)
    assert tools.log_config(version)[0] in items
    with tarfile.open(fileobj=io.BytesIO(tools.tar_bytes(version))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/kafka-topics"].issym() and members["bin/kafka-topics.sh"].mode == 0o755
    assert all(m.uid == 0 for m in members.values())
    assert tools.fingerprint("3.9.2") != tools.fingerprint("4.4.0")


@pytest.fixture
def home(tmp_path):
    """A Kafka home with the 3.9 launchers and a stand-in java (JAVA_HOME) that prints
    each argument it gets on a line of its own, NUL-separated."""
    tools.write(tmp_path / "kafka", "3.9.2")
    jh = tmp_path / "jdk"
    (jh / "bin").mkdir(parents=True)
    (jh / "bin" / "java").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done\n')
    (jh / "bin" / "java").chmod(0o755)
    return tmp_path


def run(home: Path, tool: str, *args: str, env: dict | None = None) -> list[str]:
    base = {"PATH": "/usr/bin:/bin", "JAVA_HOME": str(home / "jdk")}
    out = subprocess.run([str(home / "kafka" / "bin" / tool), *args], env={**base, **(env or {})},
                         capture_output=True, cwd=home, timeout=20, check=True).stdout
    return out.decode().split("\0")[:-1]


HOSTILE = ["$(touch pwned)", "`touch pwned`", "; touch pwned", "*", "a b", "", "'\"", "line\nbreak",
           "--bootstrap-server", "$KAFKA_OPTS", "-Dx=$(id)"]


def test_hostile_args_stay_args(home):
    argv = run(home, "kafka-topics.sh", *HOSTILE)
    home_dir = str((home / "kafka").resolve())
    assert argv[-len(HOSTILE):] == HOSTILE
    assert argv[:-len(HOSTILE)] == [
        "-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{home_dir}/config/kops-tools-log4j.properties",
        "-cp", f"{home_dir}/libs/*", "org.apache.kafka.tools.TopicCommand"]
    assert not (home / "pwned").exists() and not list(home.glob("pwned*"))


def test_environment_like_kafka_run_class(home):
    (home / "x1").write_text("")
    env = {"KAFKA_HEAP_OPTS": "-Xmx64m -Xms64m", "KAFKA_OPTS": "-Da=1 -Db=* $(touch pwned)",
           "CLASSPATH": "/extra.jar"}
    argv = run(home, "kafka-console-producer", "--topic", "t", env=env)
    assert argv[:2] == ["-Xmx64m", "-Xms64m"]
    cp = argv[argv.index("-cp") + 1]
    assert cp.startswith("/extra.jar:") and cp.endswith("/libs/*")
    # KAFKA_OPTS split into words, never globbed, never evaluated
    i = argv.index("kafka.tools.ConsoleProducer")
    assert argv[i - 4:i] == ["-Da=1", "-Db=*", "$(touch", "pwned)"]
    assert argv[i + 1:] == ["--topic", "t"]
    assert not (home / "pwned").exists()


def test_run_class_and_leading_args(home):
    argv = run(home, "kafka-run-class.sh", "-name", "x", "-loggc", "kafka.tools.ConsoleProducer", "--help")
    assert argv[-2:] == ["kafka.tools.ConsoleProducer", "--help"] and "-name" not in argv
    argv = run(home, "zookeeper-shell", "zoo1:2181", "ls", "/")
    assert argv[-5:] == ["org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka", "-server", "zoo1:2181", "ls", "/"]
    # through a symlink elsewhere on PATH, the home is still found
    os.symlink(home / "kafka" / "bin" / "kafka-topics.sh", home / "kt")
    argv = subprocess.run([str(home / "kt"), "--list"], env={"PATH": "/usr/bin:/bin", "JAVA_HOME": str(home / "jdk")},
                          capture_output=True, check=True).stdout.decode().split("\0")[:-1]
    assert argv[argv.index("-cp") + 1] == f"{(home / 'kafka').resolve()}/libs/*"
    p = subprocess.run([str(home / "kafka" / "bin" / "kafka-run-class.sh"), "-daemon", "X"],
                       env={"PATH": "/usr/bin:/bin", "JAVA_HOME": str(home / "jdk")}, capture_output=True)
    assert p.returncode == 2 and b"-daemon is not supported" in p.stderr


# -- what a node gets for them: its client config, environment, login profile; the SSH command ---------

def test_ssh_remote_line_keeps_words_and_env(tmp_path):
    from kops.providers.attach import ssh_argv, ssh_remote

    bin_dir = tmp_path / "kafka bin"
    bin_dir.mkdir()
    line = ssh_remote({"KAFKA_BOOTSTRAP_SERVERS": "h1:19092", "X": "$(touch pwned) 'q'"}, str(bin_dir),
                      ["sh", "-c", 'printf "%s\\0" "$KAFKA_BOOTSTRAP_SERVERS" "$X" "${PATH%%:*}" "$@"', "sh", *HOSTILE])
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True, cwd=tmp_path, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert out.split("\0")[:-1] == ["h1:19092", "$(touch pwned) 'q'", str(bin_dir), *HOSTILE]
    assert not (tmp_path / "pwned").exists()
    argv = ssh_argv(address="10.0.0.5", port=2222, user="root", key="/k", known_hosts="/kh", tty=False, remote=line)
    assert argv[-3:] == ["--", "10.0.0.5", line] and "-T" in argv
    assert ["-o", "StrictHostKeyChecking=yes"] == argv[argv.index("StrictHostKeyChecking=yes") - 1:][:2]
    assert "UserKnownHostsFile=/kh" in argv and argv[argv.index("-p") + 1] == "2222"


def test_nodes_get_client_config_env_and_profile():
    from kops.model import inventory, topology
    from kops.bundle import render

    cid = "MkU3OEVBNTcwNTJENDM2Qk"
    b = render.build(topology.build(inventory.load(preset="zk-single-kafka-single"), cid))
    k = b.nodes["kafka1"]
    assert "bootstrap.servers" not in k.files["/etc/kafka/client.properties"], "the tools take it on their command line"
    assert k.env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka1:19092" and k.container["environment"] == k.env
    assert k.env["KOPS_CLIENT_CONFIG"] == "/etc/kafka/client.properties" and k.env["ZOOKEEPER_CONNECT"] == "zoo1:2181"
    assert "KOPS_CLIENT_CONFIG" not in b.nodes["zoo1"].env
    ssh = render.build(topology.build(inventory.load(preset="ssh-kraft-three-hosts"), cid))
    n = ssh.nodes["kafka2"]
    prof = n.files[render.profile_path(ssh.topo)]
    assert f"PATH={n.layout.home}/bin:\"$PATH\"" in prof and 'if [ -z "${KOPS_CLUSTER:-}" ]' in prof
    assert n.env["KOPS_CLIENT_CONFIG"] == f"{n.layout.conf_dir}/client.properties"
    # the profile is sourced by login shells: it must parse, and set what it says
    out = subprocess.run(["sh", "-c", prof + '\necho "$KAFKA_BOOTSTRAP_SERVERS ${PATH%%:*}"'], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout.split()
    assert out == [ssh.topo.internal_bootstrap, f"{n.layout.home}/bin"]


def test_secure_client_config_is_secret():
    from kops.model import inventory, topology
    from kops.bundle import render

    spec = inventory.loads("name: s\nkafka: {version: 4.4.0}\nbrokers: {nodes: 1}\n"
                           "security: {tls: true, sasl: scram-sha-512}\n", "s.yaml")
    topo = topology.build(spec, "MkU3OEVBNTcwNTJENDM2Qk")
    creds = render.Credentials("CA", {"kafka1": ("KEY", "CERT")}, "pw-" + "x" * 20, "SCRAM-SHA-512")
    nb = render.node_bundle(topo, topo.node("kafka1"), creds)
    props = dict(line.split("=", 1) for line in nb.files["/etc/kafka/client.properties"].splitlines()
                 if line and not line.startswith("#"))
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["ssl.truststore.location"] == "/etc/kafka/tls/ca.pem"
    assert 'username="kops-admin" password="pw-' in props["sasl.jaas.config"]
    assert "/etc/kafka/client.properties" in nb.secret


def test_class_data_archive_only_where_it_fits(home):
    """kops's images have cds/kafka.jsa: a tool maps it, unless CLASSPATH changes the class path."""
    (home / "kafka" / "cds").mkdir()
    (home / "kafka" / "cds" / "kafka.jsa").write_text("")
    jsa = f"-XX:SharedArchiveFile={(home / 'kafka').resolve()}/cds/kafka.jsa"
    argv = run(home, "kafka-topics.sh", "--list")
    assert jsa in argv and "-Xlog:cds=off" in argv
    assert argv.index(jsa) < argv.index("-cp")
    assert jsa not in run(home, "kafka-topics.sh", "--list", env={"CLASSPATH": "/x.jar"})


def test_scaling_the_brokers_changes_no_other_nodes_definition():
    """The tools' addresses (environment, client.properties, the SSH login profile) are left
    out of what a node runs on: 3 -> 5 brokers re-renders kafka1..3 and zoo1 unchanged."""
    from kops.model import inventory, topology
    from kops.bundle import render

    cid = "MkU3OEVBNTcwNTJENDM2Qk"

    def bundle(n: int, extra: str = ""):
        return render.build(topology.build(inventory.loads(
            f"name: sc\nkafka: {{version: 3.9.2}}\nbrokers: {{nodes: {n}}}\n{extra}", "x.yaml"), cid))

    three, five = bundle(3), bundle(5)
    for node in ("zoo1", "kafka1", "kafka2", "kafka3"):
        assert three.nodes[node].digest == five.nodes[node].digest, node
        assert three.nodes[node].sums == five.nodes[node].sums, node
    assert five.nodes["kafka1"].env["KAFKA_BOOTSTRAP_SERVERS"].count(",") == 4   # the current list, for kops exec
