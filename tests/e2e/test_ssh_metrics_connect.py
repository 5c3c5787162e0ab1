"""Metrics, Kafka Connect and the schema registry over SSH, on one VM-like host (systemd + sshd container): the
distribution pushed with its extras (the JMX exporter agent, the FileStream connectors),
each node's Prometheus endpoint bound on the host's own address and scraped from this
machine, a Connect worker's unit started after Kafka and its REST API answering, a
connector made with `kops connect create`, an extra plugin (a local jar) pushed and listed; the schema registry's application pushed, its unit
started after Kafka, its Confluent API on the host's address taking a schema (confluent-kafka's
SchemaRegistryClient) and keeping it across a restart of its unit. A group of its own (t12e2e): it never touches
the hosts of the other e2e modules."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

import kopsrun
import testhosts
from kopsrun import poll
from kops.services import metrics

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GROUP = "t12e2e"
NAME = "t12-ssh-full"


@pytest.fixture(scope="module")
def host(docker_client, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(GROUP)
    key = testhosts.make_key(tmp)
    testhosts.cleanup(docker_client, GROUP)
    try:
        (vm,) = testhosts.start_hosts(docker_client, GROUP, ["vm1"], key)
        yield vm, key, tmp
    finally:
        testhosts.cleanup(docker_client, GROUP)


def test_metrics_and_connect_over_ssh(host, hello_plugin_jar):
    vm, key, tmp = host
    inv = tmp / f"{NAME}.yaml"
    inv.write_text(f"name: {NAME}\nkafka: {{version: 3.9.2, heap: 320m}}\nzookeeper: {{heap: 128m}}\n"
                   "brokers: {nodes: 1}\n"
                   f"connect: {{nodes: 1, heap: 320m, plugins: [{hello_plugin_jar}]}}\n"
                   "metrics: {prometheus: true}\nschema_registry: {nodes: 1}\n"
                   "driver: ssh\n"
                   f"ssh: {{known_hosts: {testhosts.known_hosts_of(key)}}}\nhosts:\n"
                   f"  vm1: {{address: {vm.address}, user: root, key: {key}, roles: [zookeeper, broker, connect, registry]}}\n")
    env = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1"}

    def kops(*args, timeout=600):
        return kopsrun.kops(*args, env=env, timeout=timeout)

    t0 = time.monotonic()
    up = kops("up", "-i", inv, "--timeout", "420")
    assert up.returncode == 0, up.stderr[-3000:]
    ready = time.monotonic() - t0
    try:
        st = json.loads(kops("status", "-i", inv, "--output", "json", "--wait", "60").stdout)
        assert st["state"] == "healthy", st["problems"]
        nodes = {n["name"]: n for n in st["nodes"]}
        # one host: zoo1, kafka1, connect1 count up from 7071
        assert [nodes[n]["addresses"]["metrics"] for n in ("zoo1", "kafka1", "connect1")] == [
            f"{vm.address}:{p}" for p in (7071, 7072, 7073)]
        assert nodes["connect1"]["addresses"]["host"] == f"{vm.address}:8083"
        assert metrics.scrape(f"{vm.address}:7071", timeout=10)["zookeeper_numaliveconnections"] >= 1
        v = metrics.scrape(f"{vm.address}:7072", timeout=10)
        assert v[metrics.UNDER_REPLICATED] == 0 and v[metrics.ACTIVE_CONTROLLER] == 1
        assert "kafka_connect_worker_connector_count" in metrics.scrape(f"{vm.address}:7073", timeout=10)
        res = vm.container.exec_run(["sh", "-c", "ss -ltn | grep -E ':(7072|8083) '"])
        assert f"{vm.address}:7072" in res.output.decode() and f"{vm.address}:8083" in res.output.decode(), \
            res.output.decode()   # bound on the host's address, not every interface
        plugins = {p["class"] for p in requests.get(f"http://{vm.address}:8083/connector-plugins", timeout=10).json()}
        assert "org.apache.kafka.connect.file.FileStreamSourceConnector" in plugins
        assert "kops.test.HelloSource" in plugins   # connect.plugins: a local jar pushed into its own folder
        res = vm.container.exec_run(["ls", f"/etc/kops/{NAME}/connect1/plugins/hello-source"])
        assert res.output.decode().split() == ["hello-source.jar"], res.output.decode()
        src = tmp / "src.json"
        src.write_text(json.dumps({"name": "t12-hb", "config": {
            "connector.class": "FileStreamSource", "file": "/etc/hostname", "topic": "t12-ssh", "tasks.max": "1"}}))
        made = kops("connect", "create", "-i", inv, src)
        assert made.returncode == 0, made.stderr
        listed = json.loads(kops("connect", "list", "-i", inv, "--output", "json").stdout)
        assert set(listed) == {"t12-hb"}
        # the schema registry: on the host's address, its schemas in Kafka
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

        url = st["schema_registry"]["url"]
        assert url == f"http://{vm.address}:8081/apis/ccompat/v7", url
        assert nodes["registry1"]["healthy"] and "BACKWARD" in nodes["registry1"]["health"], nodes["registry1"]
        sr = SchemaRegistryClient({"url": url})
        schema = json.dumps({"type": "record", "name": "Hb", "fields": [{"name": "host", "type": "string"}]})
        sid = sr.register_schema("t12-ssh-value", Schema(schema, "AVRO"))
        res = vm.container.exec_run(["systemctl", "restart", f"kops-{NAME}-registry1.service"])
        assert res.exit_code == 0, res.output.decode()
        latest = poll(lambda: SchemaRegistryClient({"url": url}).get_latest_version("t12-ssh-value"), timeout=120,
                      interval=1, what="the registry to answer again after its restart",
                      retry_on=(Exception,))   # not answering yet while it reads its journal
        assert latest.schema_id == sid
        print(f"ssh: ZooKeeper + broker + connect + registry + metrics ready in {ready:.1f} s")
    finally:
        kops("down", "-i", inv, "--purge")
