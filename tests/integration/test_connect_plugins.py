"""Extra Connect plugins (connect.plugins) on a real worker (Kafka 3.9): Debezium's Postgres
connector from Maven (with its dependencies, in a folder of its own) and a source connector
built here into a local jar. Both are listed by the worker; Debezium's config is validated
by its own class; the local connector runs and writes to a topic read back with a real
client; dropping a plugin from the inventory reconfigures the worker (the connector that
stays keeps running); a coordinate Maven does not serve is refused with exit 2 and nothing
changed."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest
import requests
from cleanup import remove_labelled

import kopsrun
from kopsrun import poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NAME = "t12-plugins"
DEBEZIUM = "io.debezium:debezium-connector-postgres:3.6.1.Final"
PG = "io.debezium.connector.postgresql.PostgresConnector"
HELLO = "kops.test.HelloSource"


def _inventory(path: Path, plugins: list[str]) -> None:
    path.write_text(f"name: {NAME}\nprofile: fast\nkafka: {{version: 3.9.2, heap: 256m}}\nzookeeper: {{heap: 128m}}\n"
                    f"brokers: {{nodes: 1}}\nconnect: {{nodes: 1, heap: 384m, plugins: {json.dumps(plugins)}}}\n"
                    "ports: auto\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory, docker_client, hello_plugin_jar):
    remove_labelled(docker_client, NAME)
    tmp = tmp_path_factory.mktemp(NAME)
    jar = hello_plugin_jar
    inv = tmp / f"{NAME}.yaml"
    _inventory(inv, [DEBEZIUM, str(jar)])
    e = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1"}
    try:
        yield tmp, inv, jar, e
    finally:
        kops(e, "down", "-i", inv, "--purge", timeout=300)
        remove_labelled(docker_client, NAME)


def kops(e, *args, timeout=600):
    return kopsrun.kops(*args, env=e, timeout=timeout)


def _rest(e, inv) -> str:
    st = json.loads(kops(e, "status", "-i", inv, "--output", "json").stdout)
    return st["connect"]["workers"]["connect1"]["rest"]


def _plugins(rest: str) -> set[str]:
    return {p["class"] for p in requests.get(f"http://{rest}/connector-plugins", timeout=10).json()}


def test_maven_and_local_plugins_are_listed_and_run(env, docker_client):
    tmp, inv, jar, e = env
    up = kops(e, "up", "-i", inv, "--timeout", "480")
    assert up.returncode == 0, up.stderr[-3000:]
    rest = _rest(e, inv)
    assert {PG, HELLO} <= _plugins(rest)
    # each plugin in its own folder on plugin.path, Kafka's own folder first
    worker = docker_client.containers.get(f"{NAME}-connect1")
    props = worker.exec_run(["cat", "/etc/kafka/connect-distributed.properties"]).output.decode()
    assert "plugin.path=/opt/kafka/plugins,/etc/kafka/plugins" in props
    listing = worker.exec_run(["ls", "/etc/kafka/plugins", "/etc/kafka/plugins/hello-source"]).output.decode()
    assert "debezium-connector-postgres-3.6.1.Final" in listing and "hello-source.jar" in listing
    # Debezium's own class validates its config: it is loaded, in its own class loader
    v = requests.put(f"http://{rest}/connector-plugins/{PG}/config/validate",
                     json={"connector.class": PG, "topic.prefix": "t12"}, timeout=30).json()
    assert v["name"] == PG and v["error_count"] >= 1
    assert any(c["value"]["name"] == "database.hostname" and c["value"]["errors"] for c in v["configs"])

    conn = tmp / "hello.json"
    topic = f"hello-{uuid.uuid4().hex[:6]}"
    conn.write_text(json.dumps({"name": "hello", "config": {
        "connector.class": HELLO, "topic": topic, "count": "3", "tasks.max": "1",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}))
    made = kops(e, "connect", "create", "-i", inv, conn)
    assert made.returncode == 0, made.stderr

    from confluent_kafka import Consumer

    st = json.loads(kops(e, "status", "-i", inv, "--output", "json").stdout)
    cons = Consumer({"bootstrap.servers": st["bootstrap_servers"], "group.id": "t12-hello",
                     "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got, deadline = [], time.monotonic() + 90
    while len(got) < 3 and time.monotonic() < deadline:
        m = cons.poll(1.0)
        if m is not None and not m.error():
            got.append(m.value().decode())
    cons.close()
    assert got == [f"hello {i} from a local plugin" for i in (1, 2, 3)]


def test_dropping_a_plugin_reconfigures_the_worker(env):
    tmp, inv, jar, e = env
    _inventory(inv, [str(jar)])
    dry = kops(e, "up", "-i", inv, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    row = next(line for line in dry.stdout.splitlines() if line.startswith("connect1"))
    assert row.split()[1] == "reconfigure" and "plugins.txt" in row, dry.stdout
    up = kops(e, "up", "-i", inv, "--timeout", "300")
    assert up.returncode == 0, up.stderr[-3000:]
    rest = _rest(e, inv)
    listed = _plugins(rest)
    assert HELLO in listed and PG not in listed
    poll(lambda: requests.get(f"http://{rest}/connectors/hello/status", timeout=10).json()["connector"]["state"]
         == "RUNNING", timeout=90, interval=1, what="the hello connector to run again on the new worker",
         retry_on=(requests.RequestException, KeyError, ValueError))


def test_a_plugin_maven_does_not_serve_is_refused_and_nothing_changes(env, docker_client):
    tmp, inv, jar, e = env
    before = docker_client.containers.get(f"{NAME}-connect1").id
    _inventory(inv, [str(jar), "org.example.kops:no-such-plugin:0.0.1"])
    up = kops(e, "up", "-i", inv, "--timeout", "120")
    assert up.returncode == 2, (up.returncode, up.stderr[-2000:])
    assert "connect.plugins: org.example.kops:no-such-plugin:0.0.1" in up.stderr
    assert docker_client.containers.get(f"{NAME}-connect1").id == before
    _inventory(inv, [str(tmp / "missing.jar")])
    bad = kops(e, "up", "-i", inv)
    assert bad.returncode == 2 and "connect.plugins.0" in bad.stderr and "no such file" in bad.stderr, bad.stderr
