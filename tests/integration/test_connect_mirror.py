"""MirrorMaker 2 between two kops clusters on one engine (Kafka 3.9): cluster A (a broker)
and cluster B (a broker and a Connect worker). A MirrorSourceConnector created with
`kops connect create` on B copies topic `orders` of A into `a.orders` on B: every record,
keys and values compared, read with a real client; a record produced after the connector
runs follows it. B's worker reaches A the way any container on the engine does, through A's
brokers' DOCKER listener (host.docker.internal)."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from cleanup import remove_labelled

from kopsrun import kops, poll

from kops.model import inventory
from kops.pytest_plugin import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SOURCE, TARGET = "t12-mm2-a", "t12-mm2-b"
COMMON = "profile: fast\nkafka: {version: 3.9.2, heap: 256m}\nzookeeper: {heap: 128m}\nbrokers: {nodes: 1}\nports: auto\n"


@pytest.fixture(scope="module")
def clusters(tmp_path_factory, docker_client):
    for n in (SOURCE, TARGET):
        remove_labelled(docker_client, n)
    tmp = tmp_path_factory.mktemp("mm2")
    old = os.environ.get("KOPS_STATE_DIR")
    os.environ["KOPS_STATE_DIR"] = str(tmp / "state")
    made = []
    try:
        for name, extra in ((SOURCE, ""), (TARGET, "connect: {nodes: 1, heap: 320m}\n")):
            inv = tmp / f"{name}.yaml"
            inv.write_text(f"name: {name}\n{COMMON}{extra}")
            c = KafkaCluster(inventory.load(path=str(inv)), log=lambda m: None)
            made.append(c)
            c.up(timeout=480)
            c.inventory = inv
        yield made
    finally:
        try:
            for c in made:
                c.purge()
        finally:
            for n in (SOURCE, TARGET):
                remove_labelled(docker_client, n)
            if old is None:
                os.environ.pop("KOPS_STATE_DIR", None)
            else:
                os.environ["KOPS_STATE_DIR"] = old


def _produce(c: KafkaCluster, topic: str, records: list[tuple[str, str]]) -> None:
    from confluent_kafka import Producer

    p = Producer({**c.client_config, "acks": "all", "enable.idempotence": True})
    for k, v in records:
        p.produce(topic, key=k.encode(), value=v.encode())
    assert p.flush(30) == 0


def _read_all(c: KafkaCluster, topic: str, want: int, timeout: float = 90) -> list[tuple[str, str]]:
    from confluent_kafka import Consumer

    cons = Consumer({**c.client_config, "group.id": f"read-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    cons.subscribe([topic])
    got: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = cons.poll(1.0)
            if m is None or m.error():
                continue
            got.append((m.key().decode(), m.value().decode()))
    finally:
        cons.close()
    return got


def test_mirror_source_copies_a_topic_between_two_clusters(clusters, tmp_path):
    a, b = clusters
    a.topic("orders", partitions=1)
    records = [(f"k{i}", f"order {i}: ünïcode, \"quotes\"") for i in range(40)]
    _produce(a, "orders", records)

    st_a = a.status()
    via_engine = next(n["addresses"]["containers"] for n in st_a["nodes"] if n["role"] == "broker")
    assert via_engine.startswith("host.docker.internal:")
    st_b = b.status()
    b_internal = next(n["addresses"]["network"] for n in st_b["nodes"] if n["role"] == "broker")
    conn = tmp_path / "mm2.json"
    conn.write_text(json.dumps({"name": "mm2-a-to-b", "config": {
        "connector.class": "org.apache.kafka.connect.mirror.MirrorSourceConnector",
        "source.cluster.alias": "a", "target.cluster.alias": "b",
        "source.cluster.bootstrap.servers": via_engine, "target.cluster.bootstrap.servers": b_internal,
        "topics": "orders", "tasks.max": "1", "replication.factor": "1",
        "offset-syncs.topic.replication.factor": "1", "sync.topic.acls.enabled": "false",
        "refresh.topics.interval.seconds": "5",
        "key.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
        "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter"}}))
    made = kops("connect", "create", conn, "-i", b.inventory, timeout=120)
    assert made.returncode == 0, made.stderr

    def running():
        r = kops("connect", "status", "mm2-a-to-b", "-i", b.inventory, "--output", "json", timeout=60)
        return r.returncode == 0 and json.loads(r.stdout)
    poll(running, timeout=120, interval=1, what="the MirrorMaker 2 connector to run", retry_on=(ValueError,))

    poll(lambda: "a.orders" in b.admin().list_topics(timeout=10).topics, timeout=120, interval=1,
         what="topic a.orders on cluster B", retry_on=(Exception,))
    assert _read_all(b, "a.orders", len(records)) == records
    # a record produced now follows
    _produce(a, "orders", [("late", "after the connector started")])
    copied = poll(lambda: (got := _read_all(b, "a.orders", len(records) + 1, timeout=20))[len(records):] and got,
                  timeout=90, interval=1, what="the late record on cluster B", retry_on=(Exception,))
    assert copied[-1] == ("late", "after the connector started") and copied[:len(records)] == records
    # nothing went the other way: cluster A has no b.* topic
    assert not [t for t in a.admin().list_topics(timeout=10).topics if t.startswith("b.")]
