"""Kafka Connect and the schema registry on a TLS + SASL/SCRAM cluster (Docker, KRaft 4.4,
one combined node, one worker, one registry, `ports: auto`, the fast profile).

* `up` makes the services' own SCRAM users (kops-connect, kops-registry) before they start,
  and both come up healthy (`kops status`), their Kafka side over SASL_SSL;
* a source connector (kops's HelloSource test plugin, a local jar: the 4.4.0 image's
  FileStream connectors come from another 4.x and do not load there) writes into a topic, its
  producer authenticating with the worker's producer.* settings; read back with
  confluent-kafka over SASL_SSL as an inventory user;
* confluent-kafka's SchemaRegistryClient registers an Avro schema, and AvroSerializer /
  AvroDeserializer round-trip records through the secure cluster;
* the services' passwords: kept 0600 on this machine, 0640 root:kafka in the nodes, never in
  `up`/`status` output, the nodes' logs or their command lines; a second `up` changes nothing.
"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

import kopsrun
from kopsrun import json_of, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TOPIC = "secsvc-lines"
HELLO = "kops.test.HelloSource"
COUNT = 12
STRING = "org.apache.kafka.connect.storage.StringConverter"
SCHEMA = {"type": "record", "name": "Order", "namespace": "kops.secsvc",
          "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]}


class Cluster:
    def __init__(self, name: str, inventory: Path, env: dict, tmp: Path):
        self.name, self.inventory, self.env, self.tmp = name, inventory, env, tmp
        self.up = None
        self.client: dict = {}

    def kops(self, *args, timeout: float = 300):
        return kopsrun.kops(*args, "-i", self.inventory, env=self.env, timeout=timeout)

    @property
    def secrets(self) -> Path:
        return Path(self.env["KOPS_STATE_DIR"]) / "clusters" / self.name / "secrets"

    def passwords(self) -> dict:
        return json.loads((self.secrets / "users.json").read_text())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, own_clusters_module, hello_plugin_jar):
    name = own_clusters_module(f"secsvc-{uuid.uuid4().hex[:4]}")
    tmp = tmp_path_factory.mktemp(name)
    inv = tmp / f"{name}.yaml"
    inv.write_text(yaml.safe_dump({
        "name": name, "profile": "fast", "ports": "auto",
        "kafka": {"version": "4.4.0", "mode": "kraft", "heap": "256m"},
        "brokers": {"nodes": 1},
        "security": {"tls": True, "sasl": "scram-sha-512", "users": {"app": {}}},
        "connect": {"nodes": 1, "heap": "288m", "plugins": [str(hello_plugin_jar)]},
        "schema_registry": {"nodes": 1, "heap": "160m"},
        "topics": {TOPIC: {"partitions": 1}},
    }, sort_keys=False))
    env = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "160"}
    c = Cluster(name, inv, env, tmp)
    c.up = ok(c.kops("up", timeout=720))
    out = tmp / "client"
    ok(c.kops("client-config", "app", "-o", out))
    c.client = {k: v for k, v in (line.strip().split("=", 1) for line in (out / "librdkafka.conf").read_text()
                                  .splitlines() if "=" in line and not line.startswith("#"))}
    c.client.update({"log_level": 0, "socket.timeout.ms": 10000})
    yield c
    c.kops("down", "--purge", timeout=300)


def _container(docker_client, c: Cluster, node: str):
    return docker_client.containers.get(f"{c.name}-{node}")


def test_up_makes_the_services_users_and_both_are_healthy(cluster):
    up = cluster.up
    assert "kops-connect" in up.stderr + up.stdout and "kops-registry" in up.stderr + up.stdout, up.stderr
    pw = cluster.passwords()
    assert {"kops-admin", "kops-connect", "kops-registry", "app"} <= set(pw)
    st = json_of(ok(cluster.kops("status", "--output", "json")))
    assert st["state"] == "healthy", st["problems"]
    assert st["connect"]["workers"]["connect1"]["state"] == "running", st["connect"]
    assert st["schema_registry"]["nodes"]["registry1"]["state"] == "running", st["schema_registry"]
    nodes = {n["name"]: n for n in st["nodes"]}
    assert nodes["connect1"]["healthy"] and nodes["registry1"]["healthy"], (nodes["connect1"], nodes["registry1"])
    text = ok(cluster.kops("status")).stdout
    assert "connect1" in text and "registry1" in text
    # the worker's internal topics were made by kops-connect over SASL_SSL
    from confluent_kafka.admin import AdminClient

    topics = AdminClient(cluster.client).list_topics(timeout=20).topics
    assert {f"{cluster.name}-connect-configs", "kafkasql-journal", TOPIC} <= set(topics)


def test_secrets_stay_out_of_output_logs_and_command_lines(cluster, docker_client):
    pw = cluster.passwords()
    secret = [pw["kops-connect"], pw["kops-registry"], pw["kops-admin"]]
    st = cluster.kops("status", "--output", "json")
    logs = ok(cluster.kops("logs", "--tail", "5000"))
    for where, text in (("up", cluster.up.stdout + cluster.up.stderr), ("status", st.stdout + st.stderr),
                        ("logs", logs.stdout + logs.stderr)):
        assert not any(s in text for s in secret), f"a password in the {where} output"
    assert "kops-connect" in logs.stdout or "connect1" in logs.stdout   # the logs were read
    for f in cluster.secrets.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for node, path in (("connect1", "/etc/kafka/connect-distributed.properties"),
                       ("registry1", "/etc/kafka/registry.properties")):
        ctr = _container(docker_client, cluster, node)
        attrs = ctr.attrs
        argv = " ".join([attrs["Path"], *attrs["Args"]]) + " ".join(attrs["Config"].get("Env") or [])
        assert not any(s in argv for s in secret), f"a password on {node}'s command line or environment"
        ps = ctr.exec_run(["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]).output.decode()
        assert "java" in ps and not any(s in ps for s in secret), f"a password in {node}'s processes"
        mode = ctr.exec_run(["stat", "-c", "%a %U:%G", path]).output.decode().split()
        assert mode == ["640", "root:kafka"], (node, mode)
        ca = ctr.exec_run(["stat", "-c", "%a", "/etc/kafka/tls/ca.pem"]).output.decode().strip()
        assert ca == "644", (node, ca)
        # the service's Kafka clients as they log their settings: SASL_SSL, host names verified, password hidden
        log = ctr.logs().decode(errors="replace")
        assert "security.protocol = SASL_SSL" in log and "ssl.endpoint.identification.algorithm = https" in log, node
        assert "sasl.jaas.config = [hidden]" in log and not any(s in log for s in secret), node
    rendered = cluster.tmp / "render"
    ok(cluster.kops("render", "-o", rendered))
    for f in rendered.rglob("*"):
        if f.is_file() and any(s in f.read_text(errors="replace") for s in secret):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f"{f} holds a password and is not 0600"


def test_a_source_connector_writes_into_the_secure_cluster(cluster):
    spec = cluster.tmp / "src.json"
    spec.write_text(json.dumps({"name": "secsvc-src", "config": {
        "connector.class": HELLO, "topic": TOPIC, "count": str(COUNT), "tasks.max": "1",
        "key.converter": STRING, "value.converter": STRING}}))
    ok(cluster.kops("connect", "create", spec))
    poll(lambda: cluster.kops("connect", "status", "secsvc-src").returncode == 0, timeout=120, interval=1,
         what="the source connector running")

    from confluent_kafka import Consumer

    consumer = Consumer({**cluster.client, "group.id": f"secsvc-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    got: list[str] = []
    deadline = time.monotonic() + 120
    while len(got) < COUNT and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    consumer.close()
    assert got == [f"hello {i} from a local plugin" for i in range(1, COUNT + 1)]
    listed = json_of(ok(cluster.kops("connect", "list", "--output", "json")))
    assert listed["secsvc-src"]["state"] == "RUNNING" and listed["secsvc-src"]["tasks"] == ["RUNNING"], listed


def test_avro_through_the_registry_and_the_secure_cluster(cluster):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    st = json_of(ok(cluster.kops("status", "--output", "json")))
    url = st["schema_registry"]["url"]
    sr = SchemaRegistryClient({"url": url})
    topic = f"secsvc-orders-{uuid.uuid4().hex[:4]}"
    sid = sr.register_schema(f"{topic}-value", Schema(json.dumps(SCHEMA), "AVRO"))
    assert sid >= 1
    ser = AvroSerializer(sr, json.dumps(SCHEMA), conf={"auto.register.schemas": False})
    prod = Producer(cluster.client)
    orders = [{"id": i, "item": f"item-{i}"} for i in range(10)]
    for o in orders:
        prod.produce(topic, ser(o, SerializationContext(topic, MessageField.VALUE)))
    assert prod.flush(60) == 0
    de = AvroDeserializer(sr)
    cons = Consumer({**cluster.client, "group.id": f"secsvc-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got = []
    deadline = time.monotonic() + 90
    while len(got) < len(orders) and time.monotonic() < deadline:
        m = cons.poll(1.0)
        if m is not None and m.error() is None:
            got.append(de(m.value(), SerializationContext(topic, MessageField.VALUE)))
    cons.close()
    assert got == orders
    # the schema lives in the registry's journal, in the secure cluster
    subjects = requests.get(f"{url}/subjects", timeout=10).json()
    assert f"{topic}-value" in subjects
    reg = json_of(ok(cluster.kops("status", "--output", "json")))["schema_registry"]["nodes"]["registry1"]
    assert reg["subjects"] >= 1, reg


def test_a_second_up_changes_nothing(cluster):
    before = cluster.passwords()
    again = ok(cluster.kops("up", timeout=300))
    assert "nothing to change" in again.stderr + again.stdout, again.stderr
    assert cluster.passwords() == before
