"""The schema registry (Apicurio Registry, Confluent API, stored in Kafka), on Docker, on
Kafka 3.9 (ZooKeeper mode) and 4.4 (KRaft): confluent-kafka's SchemaRegistryClient with
AvroSerializer/AvroDeserializer round-trips records through the cluster; an incompatible
schema change is refused under the default BACKWARD compatibility; the registry's topics
are kept forever; a killed registry is named by the status and `up` heals it; the whole
cluster stopped and started again keeps every schema (they live in Kafka)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
import requests
from cleanup import remove_labelled

import kopsrun
from kopsrun import poll

from kops.model import inventory
from kops.pytest_plugin import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CLUSTERS = {
    "zk": ("t12-registry-zk", "kafka: {version: 3.9.2, heap: 256m}\nzookeeper: {heap: 128m}\nbrokers: {nodes: 1}\n"),
    "kraft": ("t12-registry-kraft", "kafka: {version: 4.4.0, mode: kraft, heap: 256m}\nbrokers: {nodes: 1}\n"),
}
V1 = {"type": "record", "name": "Order", "namespace": "kops.test",
      "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]}
# BACKWARD: readers of v2 can read v1 data, so a new field needs a default
V2_OK = {**V1, "fields": V1["fields"] + [{"name": "qty", "type": "int", "default": 1}]}
V2_BAD = {**V1, "fields": V1["fields"] + [{"name": "price", "type": "double"}]}


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request, tmp_path_factory, docker_client):
    name, body = CLUSTERS[request.param]
    remove_labelled(docker_client, name)
    tmp = tmp_path_factory.mktemp(name)
    inv = tmp / f"{name}.yaml"
    inv.write_text(f"name: {name}\nprofile: fast\n{body}schema_registry: {{nodes: 1}}\nports: auto\n")
    old = os.environ.get("KOPS_STATE_DIR")
    os.environ["KOPS_STATE_DIR"] = str(tmp / "state")
    c = KafkaCluster(inventory.load(path=str(inv)), log=lambda m: None)
    c.up(timeout=480)
    c.inventory, c.tmp, c.name = inv, tmp, name
    try:
        yield c
    finally:
        try:
            c.purge()
        finally:
            remove_labelled(docker_client, name)
            if old is None:
                os.environ.pop("KOPS_STATE_DIR", None)
            else:
                os.environ["KOPS_STATE_DIR"] = old


def kops(c, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``kops ARGS... -i INVENTORY``."""
    return kopsrun.kops(*args, "-i", c.inventory, timeout=timeout)


def registry_url(c) -> str:
    st = c.status()
    return st["schema_registry"]["url"]


def _client(c):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": registry_url(c)})


def test_status_and_env_name_the_registry(cluster):
    st = cluster.status()
    assert st["state"] == "healthy", st["problems"]
    reg = st["schema_registry"]
    assert reg["url"].startswith("http://127.0.0.1:") and reg["url"].endswith("/apis/ccompat/v7")
    node = reg["nodes"]["registry1"]
    assert node["state"] == "running" and node["compatibility"] == "BACKWARD", node
    row = next(n for n in st["nodes"] if n["name"] == "registry1")
    assert row["role"] == "registry" and row["healthy"] and "REST ok" in row["health"], row
    env = kops(cluster, "env", "--output", "json")
    assert env.returncode == 0, env.stderr
    assert json.loads(env.stdout)["SCHEMA_REGISTRY_URL"] == reg["url"]
    # the Confluent API answers on the published address
    resp = requests.get(f"{reg['url']}/subjects", timeout=10)
    assert resp.status_code == 200 and isinstance(resp.json(), list)


def test_storage_topics_are_kept_forever(cluster):
    from confluent_kafka.admin import ConfigResource

    admin = cluster.admin()
    res = {t: ConfigResource(ConfigResource.Type.TOPIC, t) for t in ("kafkasql-journal", "kafkasql-snapshots")}
    for topic, fut in admin.describe_configs(list(res.values())).items():
        cfg = fut.result(timeout=30)
        assert cfg["retention.ms"].value == "-1", (topic, cfg["retention.ms"].value)
        assert cfg["retention.bytes"].value == "-1"
        assert cfg["cleanup.policy"].value == "delete"
    md = admin.list_topics(timeout=30)
    assert len(md.topics["kafkasql-journal"].partitions) == 1


def test_avro_round_trip_through_the_cluster(cluster):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic = f"orders-{uuid.uuid4().hex[:6]}"
    cluster.topic(topic, partitions=1)
    sr = _client(cluster)
    ser = AvroSerializer(sr, json.dumps(V1))
    records = [{"id": i, "item": f"item {i} ünïcode"} for i in range(50)]
    prod = Producer({**cluster.client_config, "acks": "all", "enable.idempotence": True})
    for r in records:
        prod.produce(topic, value=ser(r, SerializationContext(topic, MessageField.VALUE)))
    assert prod.flush(30) == 0
    subject = f"{topic}-value"
    assert subject in sr.get_subjects()
    latest = sr.get_latest_version(subject)
    assert latest.version == 1 and json.loads(latest.schema.schema_str)["name"] == "Order"

    de = AvroDeserializer(sr)   # the writer's schema comes from the registry, by the id in each record
    cons = Consumer({**cluster.client_config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    cons.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < len(records) and time.monotonic() < deadline:
        m = cons.poll(1.0)
        if m is None or m.error():
            continue
        assert m.value()[0] == 0 and int.from_bytes(m.value()[1:5], "big") == latest.schema_id
        got.append(de(m.value(), SerializationContext(topic, MessageField.VALUE)))
    cons.close()
    assert got == records


def test_incompatible_change_refused_under_backward(cluster):
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    sr = _client(cluster)
    subject = f"compat-{uuid.uuid4().hex[:6]}-value"
    first = sr.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    assert sr.test_compatibility(subject, Schema(json.dumps(V2_BAD), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(json.dumps(V2_BAD), "AVRO"))
    assert refused.value.http_status_code == 409
    second = sr.register_schema(subject, Schema(json.dumps(V2_OK), "AVRO"))
    assert second != first
    assert sr.get_versions(subject) == [1, 2]
    # the same schema again is the same id (canonical hashing), not a new version
    assert sr.register_schema(subject, Schema(json.dumps(V1, indent=2), "AVRO")) == first
    assert sr.get_versions(subject) == [1, 2]


def test_registry_survives_a_kill_and_a_whole_restart_with_its_schemas(cluster, docker_client):
    from confluent_kafka.schema_registry import Schema

    sr = _client(cluster)
    subject = f"durable-{uuid.uuid4().hex[:6]}-value"
    sid = sr.register_schema(subject, Schema(json.dumps(V1), "AVRO"))
    before = sorted(_client(cluster).get_subjects())

    docker_client.containers.get(f"{cluster.name}-registry1").kill()
    def named():
        s = cluster.status()
        return s if any(p.startswith("registry1") for p in s["problems"]) else None

    st = poll(named, timeout=60, interval=1, what="the status to name the killed registry", retry_on=(Exception,))
    assert st["state"] == "degraded"
    up = kops(cluster, "up")
    assert up.returncode == 0, up.stderr[-3000:]
    assert "registry1" in up.stderr and "schema registry ready" in up.stderr
    assert sorted(_client(cluster).get_subjects()) == before
    assert _client(cluster).get_schema(sid).schema_str.replace(" ", "") == json.dumps(V1).replace(" ", "")

    down = kops(cluster, "down")
    assert down.returncode == 0, down.stderr[-3000:]
    up = kops(cluster, "up")
    assert up.returncode == 0, up.stderr[-3000:]
    again = _client(cluster)
    assert sorted(again.get_subjects()) == before
    assert again.get_latest_version(subject).schema_id == sid
    # a no-op re-run changes nothing
    noop = kops(cluster, "up", "--dry-run")
    assert noop.returncode == 0, noop.stderr
    row = next(line for line in noop.stdout.splitlines() if line.startswith("registry1"))
    assert row.split()[1] == "unchanged", noop.stdout
