"""JMX, wired whole: `brokers.jmx_port` publishes each broker's JMX port and advertises an
RMI address the host can reach; a real JMX client (Kafka's JmxTool, run on this machine)
reads a broker MBean through it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import pytest

from kopsrun import kops

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NAME = "kops-jmx"


def test_jmx_port_serves_broker_mbeans(tmp_path, docker_client):
    from kops.artifacts import dist

    inv = tmp_path / "jmx.yaml"
    inv.write_text(f"name: {NAME}\nprofile: fast\nkafka: {{version: 3.9.2, heap: 256m}}\n"
                   "zookeeper: {heap: 128m, client_port: 31981}\n"
                   "brokers: {nodes: 2, external_port: 31792, docker_port: 31892, jmx_port: 31999}\n")
    env = dict(os.environ, KOPS_STATE_DIR=str(tmp_path / "state"))
    run = lambda *a: kops(*a, env=env, timeout=300)  # noqa: E731
    run("down", "--purge", "--name", NAME)
    try:
        up = run("up", "-i", str(inv))
        assert up.returncode == 0, up.stderr
        st = json.loads(run("status", "-i", str(inv), "--output", "json").stdout)
        jmx = {n["name"]: n["addresses"].get("jmx") for n in st["nodes"] if n["role"] == "broker"}
        assert jmx == {"kafka1": "127.0.0.1:31999", "kafka2": "127.0.0.1:32000"}
        d = dist.cached("3.9.2")
        assert d is not None, "make test fetches Kafka 3.9.2 first"
        java = shutil.which("java")
        assert java, "a JRE on this machine runs the JMX client"
        for broker_id, addr in ((1, jmx["kafka1"]), (2, jmx["kafka2"])):
            def read(obj: str) -> str:
                p = subprocess.run(
                    [java, "-cp", f"{d.path}/libs/*", "org.apache.kafka.tools.JmxTool",
                     "--jmx-url", f"service:jmx:rmi:///jndi/rmi://{addr}/jmxrmi",
                     "--object-name", obj, "--one-time", "true"],
                    capture_output=True, text=True, timeout=60)
                assert p.returncode == 0, p.stderr
                header, values = p.stdout.strip().splitlines()[-2:]
                # JmxTool names columns "<object>:<attribute>" (or just the attribute): key by attribute
                cols = [h.rsplit(":", 1)[-1] for h in next(csv.reader([header]))]
                return dict(zip(cols, next(csv.reader([values]))))

            info = read(f"kafka.server:type=app-info,id={broker_id}")
            assert info["Version"] == "3.9.2", info
            state = read("kafka.server:type=KafkaServer,name=BrokerState")
            assert state["Value"] == "3", state  # RUNNING
    finally:
        run("down", "--purge", "--name", NAME)
