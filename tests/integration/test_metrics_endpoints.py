"""Prometheus metrics, wired whole: `metrics: {prometheus: true}` puts the JMX exporter on
every JVM; each endpoint is scraped over HTTP from this machine, and the under-replicated
partitions gauge tells the truth about a real cluster: 0 while healthy with an RF-2 topic,
above 0 while a broker is stopped, 0 again once `up` started it.

One small cluster per Kafka line, one after the other: 3.9 in ZooKeeper mode (ZooKeeper's
own endpoint too) and 4.4 in KRaft mode (a dedicated controller's endpoint too)."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

from kopsrun import kops, poll

from kops.model import inventory
from kops.services import metrics
from kops.pytest_plugin import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CLUSTERS = {
    "3.9": ("t12-metrics-zk", "kafka: {version: 3.9.2, heap: 256m}\nzookeeper: {nodes: 1, heap: 256m}\n"
                              "brokers: {nodes: 2}\n"),
    "4.4": ("t12-metrics-kraft", "kafka: {version: 4.4.0, heap: 256m}\ncontrollers: {nodes: 1, heap: 256m}\n"
                                 "brokers: {nodes: 2}\n"),
}


RETRY = (requests.RequestException,)   # what a poll here retries


@pytest.fixture(scope="module", params=sorted(CLUSTERS))
def cluster(request, tmp_path_factory, docker_client, own_clusters_module):
    name, body = CLUSTERS[request.param]
    own_clusters_module(name)
    tmp = tmp_path_factory.mktemp(name)
    inv = tmp / f"{name}.yaml"
    inv.write_text(f"name: {name}\nprofile: fast\n{body}metrics: {{prometheus: true}}\nports: auto\n")
    old = os.environ.get("KOPS_STATE_DIR")
    os.environ["KOPS_STATE_DIR"] = str(tmp / "state")
    c = KafkaCluster(inventory.load(path=str(inv)), log=lambda m: None)
    t0 = time.monotonic()
    c.up(timeout=420)
    c.ready_seconds = time.monotonic() - t0
    c.inventory = inv
    try:
        yield c
    finally:
        try:
            c.purge()
        finally:
            if old is None:
                os.environ.pop("KOPS_STATE_DIR", None)
            else:
                os.environ["KOPS_STATE_DIR"] = old


def _endpoints(c: KafkaCluster) -> dict[str, tuple[str, str]]:
    """node -> (role, host:port of its /metrics)."""
    return {n["name"]: (n["role"], n["addresses"]["metrics"]) for n in c.status()["nodes"]}


def _urp(address: str) -> float | None:
    return metrics.scrape(address, timeout=15).get(metrics.UNDER_REPLICATED)


def test_every_endpoint_answers_with_its_role_metrics(cluster):
    eps = _endpoints(cluster)
    assert len(eps) == 3 and all(addr.startswith("127.0.0.1:") for _, addr in eps.values()), eps
    for node, (role, addr) in eps.items():
        resp = poll(lambda: requests.get(f"http://{addr}/metrics", timeout=15), timeout=90, interval=1,
                    what=f"{node}'s /metrics", retry_on=RETRY)
        assert resp.status_code == 200, (node, resp.status_code)
        values = metrics.parse(resp.text)
        assert values.get("jvm_memory_used_bytes", 0) > 0, node       # the agent's own JVM metrics
        if role == "zookeeper":
            assert values["zookeeper_numaliveconnections"] >= 2, (node, values)   # the two brokers
            assert "zookeeper_avgrequestlatency" in values
        elif role == "controller":
            assert values[metrics.ACTIVE_CONTROLLER] == 1, node
            assert values[metrics.OFFLINE] == 0
        else:
            for name in (metrics.UNDER_REPLICATED, "kafka_server_replicamanager_isrshrinks_total",
                         "kafka_server_replicamanager_isrexpands_total",
                         "kafka_server_brokertopicmetrics_bytesin_total",
                         "kafka_network_requestmetrics_requests_total",
                         "kafka_network_requestmetrics_totaltimems_mean"):
                assert name in values, (node, name)
    brokers = [a for r, a in eps.values() if r == "broker"]
    # the cluster's one active controller: a broker in ZooKeeper mode, the controller in KRaft
    # (a loaded machine's JMX exporter can take seconds to answer: a scrape that times out is retried)
    assert poll(lambda: sum(metrics.scrape(a, timeout=15).get(metrics.ACTIVE_CONTROLLER, 0) for _, a in eps.values()),
                timeout=90, interval=1, what="one active controller", retry_on=RETRY) == 1
    assert len(brokers) == 2


def test_under_replicated_partitions_follow_a_stopped_broker(cluster):
    topic = cluster.topic("t12-metrics-rf2", partitions=3, replication=2)
    eps = _endpoints(cluster)
    brokers = {n: a for n, (r, a) in eps.items() if r == "broker"}
    poll(lambda: all(_urp(a) == 0 for a in brokers.values()), timeout=90, interval=1, what="URP 0 on every broker",
         retry_on=RETRY)
    from confluent_kafka import Producer

    p = Producer(cluster.client_config)
    for i in range(20):
        p.produce(topic, f"m{i}".encode())
    assert p.flush(30) == 0

    cluster.stop("kafka2")
    urp = poll(lambda: (_urp(brokers["kafka1"]) or 0) > 0 and _urp(brokers["kafka1"]), timeout=120, interval=1,
               what="URP above 0 on kafka1 while kafka2 is stopped", retry_on=RETRY)
    assert urp >= 1
    # the status shows the same figure (a stopped node is not scraped: its state says it)
    st = cluster.status()
    figures = {n["name"]: n.get("metrics") for n in st["nodes"]}
    assert figures["kafka1"]["under_replicated"] >= 1, figures
    assert figures["kafka2"] is None and st["state"] == "degraded", figures

    cluster.start("kafka2", timeout=300)   # kops up: starts the stopped node, gates on ISRs whole
    poll(lambda: all(_urp(a) == 0 for a in brokers.values()), timeout=90, interval=1,
         what="URP back to 0 on both brokers", retry_on=RETRY)


def test_env_and_render_name_every_endpoint(cluster, tmp_path):
    eps = _endpoints(cluster)
    env = dict(os.environ)
    out = kops("env", "-i", cluster.inventory, "--output", "json", env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    urls = json.loads(out.stdout)["KOPS_METRICS_URLS"].split(",")
    assert sorted(urls) == sorted(f"http://{a}/metrics" for _, a in eps.values())
    r = kops("render", "-i", cluster.inventory, "-o", tmp_path / "out", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    import yaml

    prom = yaml.safe_load((tmp_path / "out" / "prometheus.yml").read_text())
    targets = {t["labels"]["node"]: t["targets"][0] for t in prom["scrape_configs"][0]["static_configs"]}
    assert targets == {n: a for n, (_, a) in eps.items()}
    st = kops("status", "-i", cluster.inventory, "--wide", env=env, timeout=120)
    assert st.returncode == 0 and "METRICS" in st.stdout and "urp 0" in st.stdout, st.stdout
