"""Kafka's own tools inside the nodes, through `kops exec` (issue 11), on real clusters:
Kafka 3.9 in ZooKeeper mode and 4.4 in KRaft mode, one small cluster per version shared
by the tests of this module (each runs in order on it; the last one stops it).

What a user types inside a node works as typed: `kafka-topics.sh --bootstrap-server
"$KAFKA_BOOTSTRAP_SERVERS" --command-config "$KOPS_CLIENT_CONFIG" ...`, the console
producer fed from this machine's stdin and the console consumer reading it back, the
consumer groups, the quorum (4.4) or ZooKeeper's shell (3.9); exit codes are the
command's, an unknown node is exit 2 and a stopped one exit 3.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cleanup import remove_labelled

import kopsrun
from kopsrun import ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TOOLS = ["kafka-topics.sh", "kafka-topics", "kafka-console-producer.sh", "kafka-console-consumer.sh",
         "kafka-consumer-groups.sh", "kafka-configs.sh", "kafka-acls.sh", "kafka-get-offsets.sh",
         "kafka-reassign-partitions.sh", "kafka-leader-election.sh", "kafka-producer-perf-test.sh",
         "kafka-consumer-perf-test.sh", "kafka-verifiable-producer.sh", "kafka-verifiable-consumer.sh",
         "kafka-metadata-quorum.sh", "kafka-storage.sh", "kafka-features.sh", "kafka-dump-log.sh",
         "kafka-broker-api-versions.sh", "kafka-delete-records.sh", "kafka-transactions.sh", "kafka-cluster.sh",
         "connect-distributed.sh", "kafka-run-class.sh", "kafka-console-consumer"]


class Cluster:
    def __init__(self, name: str, version: str, inv: Path, env: dict):
        self.name, self.version, self.inv, self.env = name, version, inv, env

    def kops(self, *args, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
        return kopsrun.kops(*args, env=self.env, input=input, timeout=timeout)

    def exec(self, node: str, script: str, *, input: str | None = None) -> subprocess.CompletedProcess:
        """`kops exec -i INV NODE -- sh -c SCRIPT`, as a user types it."""
        return self.kops("exec", "-i", self.inv, node, "--", "sh", "-c", script, input=input)


@pytest.fixture(scope="module", params=[("3.9.2", "zookeeper"), ("4.4.0", "kraft")], ids=["3.9-zookeeper", "4.4-kraft"])
def cluster(request, docker_client, tmp_path_factory):
    version, mode = request.param
    name = f"t11tools-{mode[:2]}-{uuid.uuid4().hex[:4]}"
    remove_labelled(docker_client, name)
    tmp = tmp_path_factory.mktemp(name)
    data = {"name": name, "ports": "auto", "profile": "fast", "kafka": {"version": version, "mode": mode, "heap": "320m"},
            "brokers": {"nodes": 1}}
    if mode == "zookeeper":
        data["zookeeper"] = {"nodes": 1, "heap": "128m"}
    inv = tmp / "cluster.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    c = Cluster(name, version, inv, {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1"})
    try:
        t0 = time.monotonic()
        ok(c.kops("up", "-i", inv, timeout=420))
        print(f"\n{name}: up in {time.monotonic() - t0:.1f} s")
        yield c
    finally:
        c.kops("down", "-i", inv, "--purge")
        remove_labelled(docker_client, name)


def test_kafkas_tools_are_on_path(cluster):
    p = ok(cluster.exec("kafka1", "for t in " + " ".join(TOOLS) + "; do command -v $t || echo MISSING $t; done; "
                                  "kafka-topics.sh --version"))
    assert "MISSING" not in p.stdout, p.stdout
    assert p.stdout.strip().splitlines()[-1].startswith(cluster.version), p.stdout
    zk = ok(cluster.exec("kafka1", "command -v zookeeper-shell.sh || echo none")).stdout.strip()
    assert (zk == "none") == cluster.version.startswith("4"), zk
    env = ok(cluster.exec("kafka1", 'echo "$KAFKA_BOOTSTRAP_SERVERS $KOPS_CLIENT_CONFIG"')).stdout.split()
    assert env == ["kafka1:19092", "/etc/kafka/client.properties"], env


def test_topic_create_and_list(cluster):
    ok(cluster.exec("kafka1", 'kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                              '--command-config /etc/kafka/client.properties --create --topic x --partitions 2'))
    listed = ok(cluster.exec("kafka1", 'kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --list'))
    assert "x" in listed.stdout.split(), listed.stdout
    # by name only (no inventory): the container's own environment
    desc = ok(cluster.kops("exec", "--name", cluster.name, "kafka1", "--", "sh", "-c",
                           'kafka-topics --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --describe --topic x'))
    assert "PartitionCount: 2" in desc.stdout, desc.stdout


def test_console_producer_to_consumer_and_groups(cluster):
    lines = [f"message {i} {uuid.uuid4().hex}" for i in range(100)]
    # Kafka 4 names the console tools' config file --command-config (the old names are deprecated)
    new = cluster.version.startswith("4")
    pconf, cconf = ("--command-config", "--command-config") if new else ("--producer.config", "--consumer.config")
    t0 = time.monotonic()
    ok(cluster.exec("kafka1", 'kafka-console-producer.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                              f'{pconf} "$KOPS_CLIENT_CONFIG" --topic rt', input="\n".join(lines) + "\n"))
    got = ok(cluster.exec("kafka1", 'kafka-console-consumer.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                                    f'{cconf} "$KOPS_CLIENT_CONFIG" --topic rt --from-beginning '
                                    '--max-messages 100 --group t11-group --timeout-ms 60000'))
    print(f"\n100 messages through the console producer and consumer in {time.monotonic() - t0:.1f} s")
    assert got.stdout.splitlines() == lines
    assert "WARN" not in got.stdout and "INFO" not in got.stdout   # the tools' logging goes to stderr
    groups = ok(cluster.exec("kafka1", 'kafka-consumer-groups.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                                       '--list'))
    assert "t11-group" in groups.stdout.split(), groups.stdout
    desc = ok(cluster.exec("kafka1", 'kafka-consumer-groups --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                                     '--describe --group t11-group'))
    assert "rt" in desc.stdout and "100" in desc.stdout, desc.stdout


def test_quorum_or_zookeeper_shell(cluster):
    if cluster.version.startswith("4"):
        p = ok(cluster.exec("kafka1", 'kafka-metadata-quorum.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                                      'describe --status'))
        assert "LeaderId:" in p.stdout and "CurrentVoters:" in p.stdout, p.stdout
    else:
        p = ok(cluster.exec("zoo1", 'zookeeper-shell.sh "$ZOOKEEPER_CONNECT" ls /brokers/ids'))
        assert "[1]" in p.stdout, p.stdout


def test_exit_codes_and_arguments(cluster):
    assert cluster.kops("exec", "-i", cluster.inv, "kafka1", "--", "false").returncode == 1
    assert cluster.exec("kafka1", "exit 7").returncode == 7
    hostile = ["$(touch /tmp/pwned)", "*", "; echo pwned", "a  b", "'\""]
    p = ok(cluster.kops("exec", "-i", cluster.inv, "kafka1", "--", "printf", "%s\\n", *hostile))
    assert p.stdout.splitlines() == hostile
    assert cluster.exec("kafka1", "test -e /tmp/pwned").returncode == 1
    unknown = cluster.kops("exec", "-i", cluster.inv, "kafka9", "--", "true")
    assert unknown.returncode == 2 and "no node 'kafka9'" in unknown.stderr and "kafka1" in unknown.stderr, \
        unknown.stderr


def test_stopped_node_is_exit_3(cluster):
    ok(cluster.kops("down", "-i", cluster.inv))
    p = cluster.kops("exec", "-i", cluster.inv, "kafka1", "--", "true")
    assert p.returncode == 3 and "not running" in p.stderr, p.stderr
