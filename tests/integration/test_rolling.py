"""`kops check` and `kops restart` against a real 3-broker cluster (ZooKeeper mode).

The roll must lose nothing: a producer with acks=all keeps writing during the whole
restart and every message is read back; the active controller goes last; a restart that
would take partitions below min.insync.replicas is refused, naming them.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest

import kopsrun
from kopsrun import ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NAME = "kops-roll"
INVENTORY = f"""
name: {NAME}
profile: fast
kafka:
  version: 3.9.2
  heap: 256m
  config: {{min.insync.replicas: 2, default.replication.factor: 3}}
zookeeper: {{nodes: 1, heap: 128m, client_port: 31681}}
brokers: {{nodes: 3, external_port: 31392, docker_port: 31492}}
"""
BOOTSTRAP = "127.0.0.1:31392,127.0.0.1:31393,127.0.0.1:31394"


def kops(*args, env, timeout=900):
    return kopsrun.kops(*args, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client):
    tmp = tmp_path_factory.mktemp("roll")
    inv = tmp / "roll.yaml"
    inv.write_text(INVENTORY)
    env = dict(os.environ, KOPS_STATE_DIR=str(tmp / "state"))
    kops("down", "--purge", "--name", NAME, env=env)
    try:
        ok(kops("up", "-i", str(inv), env=env))
        yield inv, env
    finally:
        kops("down", "--purge", "--name", NAME, env=env)


def started_at(client, node):
    return client.containers.get(f"{NAME}-{node}").attrs["State"]["StartedAt"]


def test_check_passes_and_reports_json(cluster):
    inv, env = cluster
    p = kops("check", "-i", str(inv), "--messages", "200", "--output", "json", env=env)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["passed"] is True and res["messages"] == 200 and res["replication"] == 3
    assert res["bootstrap_servers"] == BOOTSTRAP


def test_check_on_missing_cluster_exits_3(cluster):
    _, env = cluster
    p = kops("check", "--name", "no-such-cluster", env=env)
    assert p.returncode == 3
    assert "not-found" in p.stderr


def test_rolling_restart_loses_nothing_and_controller_goes_last(cluster, docker_client):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, env = cluster
    topic = f"roll-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})  # keep it alive until the future resolves
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(30)
    st = json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)
    controller = st["kafka"]["controller"]
    before = {n: started_at(docker_client, n) for n in ("kafka1", "kafka2", "kafka3", "zoo1")}

    sent, errors, stop = [], [], threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True,
                      "message.timeout.ms": 120000, "log_level": 0})
        i = 0
        while not stop.is_set():
            v = f"m{i}".encode()
            p.produce(topic, v, on_delivery=lambda e, m: errors.append(e) if e else sent.append(m.value()))
            p.poll(0)
            i += 1
            time.sleep(0.01)
        p.flush(120)

    t = threading.Thread(target=produce)
    t.start()
    try:
        r = kops("restart", "-i", str(inv), env=env)
    finally:
        stop.set()
        t.join(180)
    assert r.returncode == 0, r.stderr
    order = [line.split("\t")[0] for line in r.stdout.strip().splitlines()]
    assert sorted(order) == ["kafka1", "kafka2", "kafka3"]
    assert order[-1] == f"kafka{controller}", f"active controller kafka{controller} must go last: {order}"
    after = {n: started_at(docker_client, n) for n in before}
    assert all(after[f"kafka{i}"] != before[f"kafka{i}"] for i in (1, 2, 3))
    assert after["zoo1"] == before["zoo1"], "ZooKeeper is not part of a broker roll"
    assert not errors, f"produce errors during the roll: {errors[:3]}"
    assert len(sent) > 100

    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": topic, "auto.offset.reset": "earliest",
                  "log_level": 0})
    c.subscribe([topic])
    got, deadline = set(), time.monotonic() + 60
    while len(got) < len(set(sent)) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value())
    c.close()
    assert got >= set(sent), f"{len(set(sent) - got)} acknowledged messages lost"


def test_restart_refuses_to_take_partitions_below_min_isr(cluster, docker_client):
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, env = cluster
    topic = f"guard-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(30)
    docker_client.containers.get(f"{NAME}-kafka3").stop(timeout=60)
    try:
        p = kops("restart", "-i", str(inv), "--node", "kafka1", env=env)
        assert p.returncode == 1 and "degraded" in p.stderr and "kafka3" in p.stderr, p.stderr
        before = started_at(docker_client, "kafka1")
        p = kops("restart", "-i", str(inv), "--node", "kafka1", "--force", "--timeout", "15", env=env)
        assert p.returncode == 1, p.stderr
        assert "not restarting kafka1" in p.stderr and "min.insync.replicas" in p.stderr
        assert f"{topic}-0" in p.stderr, "the blocking partition must be named"
        assert started_at(docker_client, "kafka1") == before, "kafka1 must not have been restarted"
    finally:
        ok(kops("up", "-i", str(inv), env=env))
