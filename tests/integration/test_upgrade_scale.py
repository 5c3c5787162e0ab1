"""Day two on a real cluster (Docker, ZooKeeper mode, 1 ZooKeeper + 3-5 brokers, small
heaps, free ports), each operation under a continuous acks=all idempotent producer whose
acknowledged messages must all be read back afterwards:

* the upgrade preflight refuses Kafka 4.4.0 for a ZooKeeper-mode cluster and names the
  config key 4.x removed, both at once, exit 2, nothing restarted;
* `kops upgrade --to 3.9.2` rolls the 3.9.1 cluster (dry run first: preflight + plan),
  every node ends on the new image, the inventory says 3.9.2, nothing acknowledged lost;
* 3 -> 5 brokers: the new brokers are created and the partitions spread onto them with a
  throttled reassignment (dry run shows it), the throttle removed afterwards;
* 5 -> 2 with a replication-factor-3 topic: refused, exit 2, nothing changed;
* 5 -> 3: the leaving brokers drained, then stopped and removed (containers and volumes).

One cluster for the whole module; every figure (seconds, produced, acknowledged, lost,
duplicates) is printed for the report (pytest -s).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from kopsrun import ok
from load import Load, kops

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

NAME = "t13-day2"
FROM, TO = "3.9.1", "3.9.2"
TOPIC = "orders"


def inventory(version: str, brokers: int) -> str:
    return f"""\
name: {NAME}
ports: auto
profile: fast
kafka:
  version: {version}
  heap: 256m
  config:
    offsets.topic.replication.factor: 2
    transaction.state.log.replication.factor: 2
    transaction.state.log.min.isr: 1
    log.message.downconversion.enable: true   # defined in 3.9, removed in 4.0
zookeeper: {{nodes: 1, heap: 128m}}
brokers: {{nodes: {brokers}}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client):
    from cleanup import remove_labelled

    tmp = tmp_path_factory.mktemp("t13")
    inv = tmp / "day2.yaml"
    inv.write_text(inventory(FROM, 3))
    env = dict(os.environ, KOPS_STATE_DIR=str(tmp / "state"), KOPS_BASE_IMAGE=os.environ.get(
        "KOPS_BASE_IMAGE", "kops-base:bookworm-jre17"))
    remove_labelled(docker_client, NAME)
    try:
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        from confluent_kafka.admin import AdminClient, NewTopic

        boot = bootstrap(inv, env)
        admin = AdminClient({"bootstrap.servers": boot})   # alive until the future resolves
        admin.create_topics([NewTopic(TOPIC, 6, 2)])[TOPIC].result(30)
        yield inv, env
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
        remove_labelled(docker_client, NAME)


def bootstrap(inv, env) -> str:
    return json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)["bootstrap_servers"]


def started(docker_client) -> dict[str, str]:
    return {c.labels["io.kops.node"]: c.attrs["State"]["StartedAt"]
            for c in docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={NAME}"})
            if "io.kops.node" in c.labels}


def assignment(boot: str) -> dict[int, list[int]]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": boot}).list_topics(timeout=10)
    return {p.id: list(p.replicas) for p in md.topics[TOPIC].partitions.values()}


def test_preflight_lists_every_problem_and_changes_nothing(cluster, docker_client):
    inv, env = cluster
    before = started(docker_client)
    p = kops("upgrade", "-i", str(inv), "--to", "4.4.0", env=env)
    assert p.returncode == 2, p.stderr
    assert "migrate it to KRaft first" in p.stderr
    assert "log.message.downconversion.enable: defined in Kafka 3.9.1 but not in 4.4.0" in p.stderr
    assert "2 problem(s)" in p.stderr
    d = kops("upgrade", "-i", str(inv), "--to", "4.4.0", "--dry-run", env=env)
    assert d.returncode == 2 and "problem: Kafka 4.4.0 has no ZooKeeper mode" in d.stdout
    assert kops("upgrade", "-i", str(inv), "--to", "3.9.99", env=env).returncode == 2
    assert started(docker_client) == before, "a refused upgrade must not restart anything"
    assert f"version: {FROM}" in inv.read_text()


def test_rolling_upgrade_loses_nothing(cluster, docker_client):
    inv, env = cluster
    d = ok(kops("upgrade", "-i", str(inv), "--to", TO, "--dry-run", env=env))
    assert f"preflight {FROM} -> {TO} (zookeeper mode)" in d.stdout and "reconfigure kafka1" in d.stdout
    assert "Java 17" in d.stdout
    before = started(docker_client)
    boot = bootstrap(inv, env)
    with Load(boot, TOPIC) as load:
        load.flowing()   # load flowing before the roll starts
        p = kops("upgrade", "-i", str(inv), "--to", TO, "--finalize", "--timeout", "900", env=env)
    ok(p)
    load.verify(boot, f"upgrade {FROM} -> {TO}", p.seconds)
    after = started(docker_client)
    assert all(after[n] != before[n] for n in ("kafka1", "kafka2", "kafka3", "zoo1")), (before, after)
    images = {c.labels["io.kops.node"]: (c.attrs["Config"]["Image"], c.labels.get("io.kops.kafka-version"))
              for c in docker_client.containers.list(filters={"label": f"io.kops.cluster={NAME}"})}
    assert all(v == (f"kops/kafka:{TO}", TO) for v in images.values()), images
    assert f"version: {TO}" in inv.read_text(), "the inventory follows the upgrade"
    assert "there is no feature level to finalize" in p.stderr
    again = ok(kops("up", "-i", str(inv), env=env))
    assert "nothing to change" in again.stderr
    # a version change in the inventory + up goes through the same preflight
    inv.write_text(inventory(FROM, 3))
    try:
        back = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert f"runs Kafka {TO}; the inventory says {FROM}: upgrade preflight" in back.stderr
        assert f"preflight {TO} -> {FROM} (zookeeper mode)" in back.stderr and "reconfigure kafka1" in back.stdout
    finally:
        inv.write_text(inventory(TO, 3))


def test_adding_brokers_spreads_partitions_onto_them(cluster, docker_client):
    from kops.kafka import health, reassign

    inv, env = cluster
    boot = bootstrap(inv, env)
    inv.write_text(inventory(TO, 5))
    d = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
    assert "create kafka4" in d.stdout and "create kafka5" in d.stdout
    assert "reassign" in d.stdout and f"{TOPIC}-" in d.stdout and "-> [" in d.stdout
    assert all(not {4, 5} & set(r) for r in assignment(boot).values())
    with Load(boot, TOPIC) as load:
        load.flowing()
        p = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
    load.verify(boot, "scale 3 -> 5 brokers", p.seconds)
    assert "reassignment done" in p.stderr
    placed = assignment(boot)
    counts = {b: sum(b in r for r in placed.values()) for b in (1, 2, 3, 4, 5)}
    # 6 partitions x 2 replicas over 5 brokers: 2 or 3 on each, the new ones included
    assert sum(counts.values()) == 12 and set(counts.values()) <= {2, 3}, (counts, placed)
    left = reassign.throttle_left(health.Client(boot), [1, 2, 3, 4, 5], [TOPIC])
    assert left == [], f"throttle left behind: {left}"


def test_removing_brokers_below_a_replication_factor_is_refused(cluster, docker_client):
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, env = cluster
    boot = bootstrap(inv, env)
    admin = AdminClient({"bootstrap.servers": boot})
    admin.create_topics([NewTopic("t13-rf3", 1, 3)])["t13-rf3"].result(30)
    before = started(docker_client)
    inv.write_text(inventory(TO, 2))
    try:
        p = kops("up", "-i", str(inv), env=env)
        assert p.returncode == 2, p.stderr
        assert "topic t13-rf3 has replication factor 3, more than the 2 broker(s) left" in p.stderr
        assert started(docker_client) == before
    finally:
        admin.delete_topics(["t13-rf3"])["t13-rf3"].result(30)
        inv.write_text(inventory(TO, 5))
    deadline = time.monotonic() + 30
    while "t13-rf3" in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.5)


def test_removing_brokers_drains_them_first(cluster, docker_client):
    inv, env = cluster
    boot = bootstrap(inv, env)
    inv.write_text(inventory(TO, 3))
    d = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
    assert "drain kafka4, kafka5 first" in d.stdout and "remove" in d.stdout, d.stdout
    with Load(boot, TOPIC) as load:
        load.flowing()
        p = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
    left = ",".join(boot.split(",")[:3])
    load.verify(left, "scale 5 -> 3 brokers", p.seconds)
    placed = assignment(left)
    assert all(set(r) <= {1, 2, 3} and len(r) == 2 for r in placed.values()), placed
    names = {c.labels.get("io.kops.node") for c in docker_client.containers.list(
        all=True, filters={"label": f"io.kops.cluster={NAME}"})}
    assert not {"kafka4", "kafka5"} & names and {"kafka1", "kafka2", "kafka3"} <= names, names
    vols = [v.name for v in docker_client.volumes.list(filters={"label": f"io.kops.cluster={NAME}"})]
    assert not any("-kafka4-" in v or "-kafka5-" in v for v in vols), vols
    st = json.loads(kops("status", "-i", str(inv), "--output", "json", "--wait", "60", env=env).stdout)
    assert st["state"] == "healthy", st["problems"]


KRAFT = "t13-kraft"


def test_kraft_minor_upgrade_finalizes_the_feature_level(tmp_path, docker_client):
    """KRaft 4.3.2 -> 4.4.0 on one combined node, secured (TLS + SCRAM): the roll, then
    --finalize raises metadata.version through FeatureCommand in the node with the node's
    own client config (read back with describe)."""
    from cleanup import remove_labelled

    from kops.ops import upgrade

    inv = tmp_path / "kraft.yaml"
    inv.write_text(f"name: {KRAFT}\nports: auto\nprofile: fast\nkafka: {{version: 4.3.2, heap: 256m}}\nbrokers: {{nodes: 1}}\n"
                   "security: {tls: true, sasl: scram-sha-512}\n")
    env = dict(os.environ, KOPS_STATE_DIR=str(tmp_path / "state"), KOPS_BASE_IMAGE=os.environ.get(
        "KOPS_BASE_IMAGE", "kops-base:bookworm-jre17"))
    remove_labelled(docker_client, KRAFT)
    try:
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        c = docker_client.containers.get(f"{KRAFT}-kafka1")

        def levels():
            code, out = c.exec_run(["java", "-Xmx128m", "-cp", "/opt/kafka/libs/*", upgrade.FEATURE_MAIN,
                                    "--bootstrap-server", "kafka1:19092", "--command-config",
                                    "/etc/kafka/client.properties", "describe"], user="kafka")
            assert code == 0, out.decode()
            return upgrade.finalized_levels(out.decode())

        assert levels()["metadata.version"].startswith("4.3")
        p = ok(kops("upgrade", "-i", str(inv), "--to", "4.4.0", "--no-finalize", env=env))
        assert "feature level not finalized" in p.stderr
        c = docker_client.containers.get(f"{KRAFT}-kafka1")
        assert c.attrs["Config"]["Image"] == "kops/kafka:4.4.0"
        assert levels()["metadata.version"].startswith("4.3"), "not finalized without --finalize"
        p = ok(kops("upgrade", "-i", str(inv), "--to", "4.4.0", "--finalize", env=env))
        said = [ln for ln in p.stderr.splitlines() if "finalized" in ln or "refused" in ln]
        print(f"\nFIGURES {json.dumps({'operation': 'finalize 4.4 (KRaft)', 'seconds': round(p.seconds, 1)})} {said}")
        assert "feature level finalized at 4.4" in p.stderr
        assert levels()["metadata.version"].startswith("4.4")
        back = kops("upgrade", "-i", str(inv), "--to", "4.3.2", "--dry-run", env=env)
        assert back.returncode == 2 and ("finalized at 4.4" in back.stdout or
                                         "metadata.version is 4.4" in back.stdout), back.stdout
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
        remove_labelled(docker_client, KRAFT)
