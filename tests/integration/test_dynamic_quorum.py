"""A dynamic KRaft quorum (KIP-853) on Kafka 4.4.0, Docker: one controller and two brokers,
formatted for a dynamic quorum; the controller count goes 1 -> 3 (each new controller an
observer first, caught up, then added as a voter) and back 3 -> 1 (each leaving one removed
from the voters, then stopped and removed), under a continuous acks=all idempotent producer
whose acknowledged messages are all read back; the voter set is read from the quorum itself
after each change. A static quorum refuses a controller change with exit 2."""

from __future__ import annotations

import json
import os
import time

import pytest
from cleanup import remove_labelled
from kopsrun import ok
from load import Load, kops

from kops.plan import quorum

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

NAME = "t13-quorum"
TOPIC = "orders"


def inventory(controllers: int) -> str:
    return (f"name: {NAME}\nports: auto\nprofile: fast\nkafka: {{version: 4.4.0, mode: kraft, heap: 256m, config: "
            "{offsets.topic.replication.factor: 2, transaction.state.log.replication.factor: 2, "
            "transaction.state.log.min.isr: 1}}\n"
            f"controllers: {{nodes: {controllers}, heap: 192m}}\nbrokers: {{nodes: 2}}\n")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client):
    remove_labelled(docker_client, NAME)
    tmp = tmp_path_factory.mktemp(NAME)
    inv = tmp / f"{NAME}.yaml"
    inv.write_text(inventory(1))
    env = dict(os.environ, KOPS_STATE_DIR=str(tmp / "state"), NO_COLOR="1")
    try:
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        yield inv, env
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
        remove_labelled(docker_client, NAME)


def voters(docker_client, node: str = "controller1") -> dict:
    c = docker_client.containers.get(f"{NAME}-{node}")
    code, out = c.exec_run(["java", "-Xmx128m", "-cp", "/opt/kafka/libs/*", quorum.TOOL, "--bootstrap-controller",
                            f"{node}:{_port(c)}", "describe", "--status"], user="kafka")
    assert code == 0, out.decode()[-2000:]
    return quorum.parse(out.decode())


def _port(container) -> str:
    props = container.exec_run(["cat", "/etc/kafka/server.properties"]).output.decode()
    listeners = next(line for line in props.splitlines() if line.startswith("listeners="))
    return listeners.split("CONTROLLER://")[1].split(":")[1].split(",")[0]


def bootstrap(inv, env) -> str:
    return json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)["bootstrap_servers"]


def test_a_new_cluster_is_formatted_for_a_dynamic_quorum(cluster, docker_client):
    inv, env = cluster
    c = docker_client.containers.get(f"{NAME}-controller1")
    props = c.exec_run(["cat", "/etc/kafka/server.properties"]).output.decode()
    assert "controller.quorum.bootstrap.servers=controller1:" in props and "controller.quorum.voters" not in props
    assert c.labels["io.kops.quorum"] == "dynamic"
    q = voters(docker_client)
    assert list(q["voters"]) == [101] and q["leader"] == 101


def test_one_to_three_controllers_and_back_under_load(cluster, docker_client):
    inv, env = cluster
    from confluent_kafka.admin import AdminClient, NewTopic

    boot = bootstrap(inv, env)
    admin = AdminClient({"bootstrap.servers": boot})   # kept: its futures fail once it is collected
    admin.create_topics([NewTopic(TOPIC, 3, 2, config={"min.insync.replicas": "1"})])[TOPIC].result(30)
    figures = []
    with Load(boot, TOPIC) as load:
        load.flowing()
        inv.write_text(inventory(3))
        dry = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert "add-controller controller2 (id 102)" in dry.stdout and "add-controller controller3" in dry.stdout
        t0 = time.monotonic()
        p = ok(kops("up", "-i", str(inv), "--timeout", "900", env=env))
        grow = time.monotonic() - t0
        assert "controller2: added to the KRaft quorum as a voter" in p.stderr
        q = voters(docker_client)
        assert sorted(q["voters"]) == [101, 102, 103] and q["leader"] in (101, 102, 103), q
        assert not set(q["observers"]) & {101, 102, 103}
        mid = len(load.acked)

        inv.write_text(inventory(1))
        dry = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert "remove-controller controller3 (id 103)" in dry.stdout and "remove-controller controller2" in dry.stdout
        t0 = time.monotonic()
        p = ok(kops("up", "-i", str(inv), "--timeout", "900", env=env))
        shrink = time.monotonic() - t0
        assert "removed from the KRaft quorum's voters" in p.stderr
        q = voters(docker_client)
        assert list(q["voters"]) == [101] and q["leader"] == 101, q
        names = {c.labels["io.kops.node"] for c in docker_client.containers.list(
            all=True, filters={"label": f"io.kops.cluster={NAME}"})}
        assert names == {"controller1", "kafka1", "kafka2"}, names
        assert len(load.acked) > mid, "the cluster stopped serving while controllers left"
    st = json.loads(ok(kops("status", "-i", str(inv), "--output", "json", "--wait", "60", env=env)).stdout)
    assert st["state"] == "healthy", st["problems"]
    figures.append(load.verify(boot, "controllers 1 -> 3 -> 1 (dynamic quorum)", grow + shrink))
    print(f"\nquorum: 1 -> 3 in {grow:.1f} s, 3 -> 1 in {shrink:.1f} s")


def test_a_static_quorum_refuses_a_controller_change(tmp_path, docker_client):
    """Kafka 3.9 KRaft: a static quorum (controller.quorum.voters): 1 -> 3 controllers refused, exit 2."""
    name = "t13-static"
    remove_labelled(docker_client, name)
    inv = tmp_path / "static.yaml"
    body = f"name: {name}\nports: auto\nprofile: fast\nkafka: {{version: 3.9.2, mode: kraft, heap: 256m}}\nbrokers: {{nodes: 1}}\n"
    inv.write_text(body + "controllers: {nodes: 1, heap: 192m}\n")
    env = dict(os.environ, KOPS_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1")
    try:
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        before = docker_client.containers.get(f"{name}-controller1").id
        assert docker_client.containers.get(f"{name}-controller1").labels["io.kops.quorum"] == "static"
        inv.write_text(body + "controllers: {nodes: 3, heap: 192m}\n")
        p = kops("up", "-i", str(inv), env=env)
        assert p.returncode == 2, p.stderr[-2000:]
        assert "static KRaft quorum" in p.stderr and "adding controller2, controller3" in p.stderr
        assert docker_client.containers.get(f"{name}-controller1").id == before
        assert f"{name}-controller2" not in {c.name for c in docker_client.containers.list(all=True)}
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
        remove_labelled(docker_client, name)
