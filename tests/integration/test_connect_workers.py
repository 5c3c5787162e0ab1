"""Kafka Connect, wired whole, on one small cluster (ZooKeeper mode 3.9: one ZooKeeper, one
broker, one worker, metrics on): the worker is ready when `up` returns; a FileStream source
connector created with `kops connect create` reads a file into a topic and a FileStream
sink writes it back out (content compared, and the topic read with a real client); the
CLI lists, shows, restarts and deletes connectors; a killed worker is named by the status
and `up` heals it, its connectors kept (they live in Kafka)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time

import pytest
import requests

import kopsrun
from kopsrun import poll

from kops.model import inventory
from kops.services import metrics
from kops.pytest_plugin import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NAME = "t12-connect-zk"
LINES = [f"line {i}: ünïcode, \"quotes\", $HOME and `ticks`" for i in range(25)]
STRING = "org.apache.kafka.connect.storage.StringConverter"


RETRY = (requests.RequestException, subprocess.SubprocessError)   # what a poll here retries


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client):
    from cleanup import remove_labelled

    remove_labelled(docker_client, NAME)
    tmp = tmp_path_factory.mktemp(NAME)
    inv = tmp / f"{NAME}.yaml"
    inv.write_text(f"name: {NAME}\nprofile: fast\nkafka: {{version: 3.9.2, heap: 256m}}\nzookeeper: {{heap: 192m}}\n"
                   "brokers: {nodes: 1}\nconnect: {nodes: 1, heap: 320m}\nmetrics: {prometheus: true}\n"
                   "ports: auto\n")
    old = os.environ.get("KOPS_STATE_DIR")
    os.environ["KOPS_STATE_DIR"] = str(tmp / "state")
    c = KafkaCluster(inventory.load(path=str(inv)), log=lambda m: None)
    t0 = time.monotonic()
    c.up(timeout=480)
    c.ready_seconds = time.monotonic() - t0
    c.inventory, c.tmp = inv, tmp
    try:
        yield c
    finally:
        try:
            c.purge()
        finally:
            remove_labelled(docker_client, NAME)
            if old is None:
                os.environ.pop("KOPS_STATE_DIR", None)
            else:
                os.environ["KOPS_STATE_DIR"] = old


def kops(c: KafkaCluster, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``kops A B -i INVENTORY REST...`` (``connect create``, ``connect list``...)."""
    return kopsrun.kops(*args[:2], "-i", c.inventory, *args[2:], timeout=timeout)


def _worker(c: KafkaCluster, docker_client):
    return docker_client.containers.get(f"{NAME}-connect1")


def _put(container, path: str, text: str) -> None:
    data = text.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo(path.lstrip("/"))
        ti.size, ti.mode = len(data), 0o644
        tar.addfile(ti, io.BytesIO(data))
    assert container.put_archive("/", buf.getvalue())


def _connector_file(c: KafkaCluster, name: str, config: dict) -> str:
    path = c.tmp / f"{name}.json"
    path.write_text(json.dumps({"name": name, "config": config}))
    return str(path)


def test_up_returns_with_the_worker_ready(cluster):
    st = cluster.status()
    assert st["state"] == "healthy", st["problems"]
    node = next(n for n in st["nodes"] if n["name"] == "connect1")
    assert node["role"] == "connect" and node["healthy"] and node["health"].startswith("REST ok"), node
    rest = node["addresses"]["host"]
    assert rest.startswith("127.0.0.1:") and node["addresses"]["network"].startswith("connect1:")
    assert st["connect"]["workers"]["connect1"]["rest"] == rest
    root = requests.get(f"http://{rest}/", timeout=10).json()
    assert root["version"] == "3.9.2"
    plugins = {p["class"] for p in requests.get(f"http://{rest}/connector-plugins", timeout=10).json()}
    assert {"org.apache.kafka.connect.file.FileStreamSourceConnector",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "org.apache.kafka.connect.mirror.MirrorSourceConnector"} <= plugins
    # the group's internal topics, replication factor min(3, brokers) = 1
    md = cluster.admin().list_topics(timeout=10).topics
    for suffix in ("configs", "offsets", "status"):
        t = md[f"{NAME}-connect-{suffix}"]
        assert all(len(p.replicas) == 1 for p in t.partitions.values())
    env = kopsrun.kops("env", "-i", cluster.inventory, "--output", "json", timeout=120)
    assert env.returncode == 0 and json.loads(env.stdout)["KOPS_CONNECT_URLS"] == f"http://{rest}", env.stdout
    # the worker's Prometheus endpoint
    scraped = metrics.scrape(node["addresses"]["metrics"], timeout=10)
    assert "kafka_connect_worker_connector_count" in scraped


def test_file_source_to_topic_to_file_sink(cluster, docker_client):
    worker = _worker(cluster, docker_client)
    _put(worker, "/tmp/t12-in.txt", "\n".join(LINES) + "\n")
    conv = {"key.converter": STRING, "value.converter": STRING, "tasks.max": "1"}
    src = _connector_file(cluster, "t12-src", {"connector.class": "FileStreamSource", "file": "/tmp/t12-in.txt",
                                                "topic": "t12-lines", **conv})
    sink = _connector_file(cluster, "t12-sink", {"connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
                                                  "file": "/tmp/t12-out.txt", "topics": "t12-lines", **conv})
    dry = kops(cluster, "connect", "create", src, "--dry-run")
    assert dry.returncode == 0 and json.loads(dry.stdout)["name"] == "t12-src", dry.stderr
    for path in (src, sink):
        r = kops(cluster, "connect", "create", path)
        assert r.returncode == 0, r.stderr
    again = kops(cluster, "connect", "create", src)          # the same definition twice: an update, no error
    assert again.returncode == 0, again.stderr

    def out_file():
        res = worker.exec_run(["cat", "/tmp/t12-out.txt"])
        return res.exit_code == 0 and res.output.decode().splitlines() == LINES
    poll(out_file, timeout=120, interval=1, what="the sink's file holds every line of the source's", retry_on=RETRY)

    from confluent_kafka import Consumer

    consumer = Consumer({**cluster.client_config, "group.id": "t12-check", "auto.offset.reset": "earliest"})
    consumer.subscribe(["t12-lines"])
    got: list[str] = []
    deadline = time.monotonic() + 60
    while len(got) < len(LINES) and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is not None and m.error() is None:
            got.append(m.value().decode())
    consumer.close()
    assert got == LINES

    listed = kops(cluster, "connect", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert {n: (c["type"], c["state"], c["tasks"]) for n, c in found.items()} == {
        "t12-sink": ("sink", "RUNNING", ["RUNNING"]), "t12-src": ("source", "RUNNING", ["RUNNING"])}
    assert kops(cluster, "connect", "status", "t12-src").returncode == 0
    assert kops(cluster, "connect", "status", "no-such-connector").returncode == 3
    assert kops(cluster, "connect", "restart", "t12-src").returncode == 0
    poll(lambda: kops(cluster, "connect", "status", "t12-src").returncode == 0, timeout=120, interval=1,
         what="t12-src running again after its restart", retry_on=RETRY)
    st = kopsrun.kops("status", "-i", cluster.inventory, timeout=120)
    assert st.returncode == 0 and "REST ok, 2 connectors" in st.stdout, st.stdout


def test_bad_connector_files_are_refused_before_anything_is_sent(cluster, tmp_path):
    for text in ("not json", "[]", '{"name": "x"}', '{"name": "x", "config": {"connector.class": "a", "n": {"x": 1}}}'):
        f = tmp_path / "bad.json"
        f.write_text(text)
        r = kops(cluster, "connect", "create", str(f))
        assert r.returncode == 2, (text, r.stderr)
        assert "Error:" in r.stderr


def test_a_killed_worker_is_named_and_up_heals_it(cluster, docker_client):
    cluster.kill("connect1")
    st = cluster.status()
    assert st["state"] == "degraded"
    assert any(p.startswith("connect1: crashed") for p in st["problems"]), st["problems"]
    node = next(n for n in st["nodes"] if n["name"] == "connect1")
    assert not node["healthy"] and node["health"].startswith("crashed"), node
    r = kops(cluster, "connect", "list")
    assert r.returncode == 3 and "no running Kafka Connect worker" in r.stderr, r.stderr
    t0 = time.monotonic()
    cluster.start("connect1", timeout=300)     # kops up: starts it, then the connect-ready gate
    healed = time.monotonic() - t0
    st = cluster.status(wait=60)
    assert st["state"] == "healthy", st["problems"]
    # the connectors live in Kafka: back on the restarted worker, running
    poll(lambda: all(c["state"] == "RUNNING" and c["tasks"] == ["RUNNING"]
                     for c in json.loads(kops(cluster, "connect", "list", "--output", "json").stdout).values()),
         timeout=120, interval=1, what="both connectors running after the heal", retry_on=RETRY)
    assert kops(cluster, "connect", "delete", "t12-sink", "--dry-run").returncode == 0
    assert kops(cluster, "connect", "delete", "t12-sink").returncode == 0
    left = json.loads(kops(cluster, "connect", "list", "--output", "json").stdout)
    assert set(left) == {"t12-src"}
    print(f"connect cluster ready in {cluster.ready_seconds:.1f} s; worker healed in {healed:.1f} s")
