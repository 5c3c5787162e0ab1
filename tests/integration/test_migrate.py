"""ZooKeeper to KRaft on real clusters (Docker; 3.9.2, small heaps, free ports), each step
under a continuous acks=all idempotent producer whose acknowledged messages must all be
read back:

* 3 ZooKeeper + 3 brokers: `kops migrate --to-kraft` is killed in the middle of the
  brokers' roll into migration mode; `--status` names the phase, `kops up` is refused
  (exit 2) while the migration is under way, and the same command resumes to the end:
  KRaft brokers, 3 controllers, ZooKeeper stopped, the inventory rewritten; then the
  upgrade to 4.4.0 (finalized); the data written before, and a consumer group's committed
  offsets, are intact at the end; a rollback after the end is refused;
* (test_migrate_rollback.py) a migration stopped while the brokers roll to KRaft is rolled
  back.

Figures (seconds, produced, acknowledged, lost, duplicates) are printed (pytest -s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
from load import KOPS, Load, kops, ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

TOPIC = "orders"


def inventory(name: str, zookeepers: int, brokers: int) -> str:
    return f"""\
name: {name}
ports: auto
profile: fast
kafka:
  version: 3.9.2
  config: {{min.insync.replicas: 2}}
zookeeper: {{nodes: {zookeepers}}}
brokers: {{nodes: {brokers}}}
"""


@pytest.fixture
def cluster(tmp_path, docker_client, own_clusters):
    def make(zookeepers: int, brokers: int):
        name = own_clusters(f"t13-mig-{uuid.uuid4().hex[:5]}")
        inv = tmp_path / "cluster.yaml"
        inv.write_text(inventory(name, zookeepers, brokers))
        env = dict(os.environ, KOPS_STATE_DIR=str(tmp_path / "state"), KOPS_BASE_IMAGE=os.environ.get(
            "KOPS_BASE_IMAGE", "kops-base:bookworm-jre17"))
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        return name, inv, env

    return make


def bootstrap(inv, env) -> str:
    return json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)["bootstrap_servers"]


def seed(boot: str, group: str) -> dict[int, int]:
    """The topic (RF 3), 600 messages, and a consumer group that read and committed 300 of
    them: its committed offsets (partition -> offset)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": boot})
    admin.create_topics([NewTopic(TOPIC, 6, 3)])[TOPIC].result(30)
    p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True})
    for i in range(600):
        p.produce(TOPIC, key=f"seed-{i}".encode(), value=b"x" * 100)
    assert p.flush(60) == 0
    c = Consumer({"bootstrap.servers": boot, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([TOPIC])
    got, deadline = 0, time.monotonic() + 60
    while got < 300 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(TOPIC, i) for i in range(6)], 20)}
    c.close()
    assert got >= 300 and sum(max(o, 0) for o in committed.values()) >= 300, committed
    return committed


def committed_now(boot: str, group: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": boot, "group.id": group, "enable.auto.commit": False})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(TOPIC, i) for i in range(6)], 30)}
    finally:
        c.close()


def seed_count(boot: str) -> int:
    """How many of the seed messages the topic holds (read from the start)."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": boot, "group.id": f"count-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([TOPIC])
    seen, deadline, quiet = set(), time.monotonic() + 120, 0
    while time.monotonic() < deadline and len(seen) < 600:
        m = c.poll(0.5)
        if m is not None and not m.error() and m.key().startswith(b"seed-"):
            seen.add(m.key())
    c.close()
    return len(seen)


def run_until(env, args, marker: str, *, after: str | None = None, timeout: float = 600):
    """Start kops, SIGKILL it once its progress shows ``marker`` (then ``after``, if given):
    the interrupted run's stderr."""
    proc = subprocess.Popen([KOPS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    hit = threading.Event()

    def read():
        seen_marker = False
        for line in proc.stderr:
            lines.append(line)
            seen_marker = seen_marker or marker in line
            if seen_marker and (after is None or after in line):
                hit.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    assert hit.wait(timeout), f"{marker!r} / {after!r} never shown:\n{''.join(lines)[-4000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    t.join(10)
    return "".join(lines)


def test_migration_killed_midway_resumes_then_upgrades_with_data_and_offsets_intact(cluster, docker_client):
    name, inv, env = cluster(3, 3)
    boot = bootstrap(inv, env)
    before = seed(boot, "billing")
    dry = ok(kops("migrate", "-i", str(inv), "--to-kraft", "--dry-run", env=env))
    assert "1. controllers" in dry.stdout and "create controller3" in dry.stdout and "mode: kraft" in dry.stdout
    assert not docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}",
                                                                  "name": "controller"}), "a dry run created nodes"
    figures = []
    with Load(boot, "load-migrate") as load:
        load.flowing()
        t0 = time.monotonic()
        err = run_until(env, ["migrate", "-i", str(inv), "--to-kraft"], "phase 2/6 brokers-migrating",
                        after="kafka2: created and started")
        assert "phase 1/6 controllers" in err and "phase controllers done" in err, err
        st = ok(kops("migrate", "-i", str(inv), "--status", "--output", "json", env=env))
        where = json.loads(st.stdout)
        assert where["state"] == "migrating" and where["done"] == "controllers", where
        assert where["current"] == "brokers-migrating" and where["rollback_possible"], where
        refused = kops("up", "-i", str(inv), env=env)
        assert refused.returncode == 2 and "being migrated from ZooKeeper to KRaft" in refused.stderr, refused.stderr
        p = ok(kops("migrate", "-i", str(inv), "--to-kraft", "--output", "json", env=env))
        seconds = time.monotonic() - t0
    figures.append(load.verify(boot, "migrate ZooKeeper -> KRaft (killed in phase 2, resumed)", seconds))
    out = json.loads(p.stdout)
    assert [r["phase"] for r in out["phases"]][0] == "brokers-migrating", "resumed where it stopped"
    assert out["status"]["mode"] == "kraft" and out["status"]["state"] == "healthy", out["status"]
    assert out["inventory_written"] == str(inv)
    assert "mode: kraft" in inv.read_text() and "zookeeper" not in inv.read_text().split("written by kops")[1]
    assert (inv.parent / "cluster.yaml.zookeeper").is_file()
    labels = {c.labels["io.kops.node"]: c for c in docker_client.containers.list(
        all=True, filters={"label": f"io.kops.cluster={name}"})}
    assert {n for n, c in labels.items() if c.status == "running"} == {
        "controller1", "controller2", "controller3", "kafka1", "kafka2", "kafka3"}
    assert all(labels[f"kafka{i}"].labels["io.kops.mode"] == "kraft" for i in (1, 2, 3))
    assert all(labels[f"zoo{i}"].status == "exited" for i in (1, 2, 3)), "ZooKeeper stopped, kept"
    assert kops("migrate", "-i", str(inv), "--rollback", env=env).returncode == 2
    assert "nothing to change" in ok(kops("up", "-i", str(inv), env=env)).stderr
    with Load(boot, "load-upgrade") as load:
        load.flowing()
        p = ok(kops("upgrade", "-i", str(inv), "--to", "4.4.0", "--finalize", env=env))
    figures.append(load.verify(boot, "upgrade 3.9.2 -> 4.4.0 after the migration", p.seconds))
    assert "feature level finalized at 4.4" in p.stderr
    assert seed_count(boot) == 600, "the messages written before the migration are all there"
    assert committed_now(boot, "billing") == before, "the consumer group's committed offsets moved"
    ok(kops("migrate", "-i", str(inv), "--to-kraft", "--purge-zookeeper", env=env))
    assert not [c for c in docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}"})
                if c.labels.get("io.kops.role") == "zookeeper"]
    print("\nFIGURES-ALL " + json.dumps(figures))
