"""What the migration tests share (test_migrate.py, test_migrate_rollback.py): a
ZooKeeper-mode cluster of their own (free ports), the seed data and consumer group whose
offsets must survive, and a kops run killed once its progress shows a given line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest
from kopsrun import KOPS, ok
from load import kops

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


