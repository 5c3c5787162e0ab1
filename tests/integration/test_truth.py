"""Issue 21, on real clusters: what kops says matches where the truth lives.

* ZooKeeper mode (1 ZooKeeper + 1 broker, fast profile, ports of its own): `kops status`
  reads the brokers' registrations and the active controller from ZooKeeper itself
  (/brokers/ids, /controller), not from the brokers' cached metadata. With the broker's
  registration deleted from ZooKeeper while it runs, status says "not registered",
  degraded, exit 1; a restart of the broker brings it back.
* Moving ZooKeeper's client port under running brokers is refused before anything changes
  (the dry run and the run, exit 2, the way to do it in the hint, no container restarted);
  the way the hint names (`kops down`, then `kops up`) moves it, under an acks=all producer
  that loses nothing it was acknowledged.
* KRaft, Kafka 4.4.0 (3 combined nodes, metadata.version 4.4-IVx as formatted): `kops
  upgrade --to 4.3.2` and `kops up` of an inventory saying 4.3.2 are refused by the
  preflight, which reads the cluster's finalized metadata.version, naming it and what 4.3.2
  supports; nothing restarted.
* KRaft: moving the controllers' port (a dynamic quorum, Kafka 4.4.0) rolls: one node at a
  time, the voters' endpoints follow (Kafka updates them), under an acks=all producer that
  loses nothing; no refusal is needed there.
* KRaft: a broker cut off from the quorum (its container off the cluster network, still
  running) is fenced by the controller and `kops status` says "not registered", exit 1,
  until it is back.

Figures (seconds) are printed for the report (pytest -s).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from kopsrun import json_of, ok, poll
from load import Load, kops

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

ZK_NAME = "truth-zk"
KR_NAME = "truth-kr"
TOPIC = "orders"


def zk_inventory(client: int, external: int, docker: int) -> str:
    return f"""\
name: {ZK_NAME}
profile: fast
kafka:
  version: 3.9.2
zookeeper: {{nodes: 1, client_port: {client}}}
brokers: {{nodes: 1, external_port: {external}, docker_port: {docker}}}
"""


def kr_inventory(version: str, controller_port: int = 19192) -> str:
    return f"""\
name: {KR_NAME}
profile: fast
ports: auto
kafka:
  version: {version}
  mode: kraft
brokers: {{nodes: 3, controller_port: {controller_port}}}
"""


def started(docker_client, name: str) -> dict[str, str]:
    return {c.labels["io.kops.node"]: c.attrs["State"]["StartedAt"]
            for c in docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}"})
            if "io.kops.node" in c.labels}


def status_of(inv, env) -> tuple[int, dict]:
    p = kops("status", "-i", str(inv), "--output", "json", env=env)
    print(f"status: exit {p.returncode} in {p.seconds:.2f} s")
    return p.returncode, json_of(p)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("truth")
    return dict(os.environ, KOPS_STATE_DIR=str(tmp / "state"), KOPS_BASE_IMAGE=os.environ.get(
        "KOPS_BASE_IMAGE", "kops-base:bookworm-jre17")), tmp


@pytest.fixture(scope="module")
def zk_cluster(env, own_clusters_module):
    from cleanup import free_base

    environ, tmp = env
    own_clusters_module(ZK_NAME)
    base = free_base((0, 1, 2, 3))
    inv = tmp / "zk.yaml"
    inv.write_text(zk_inventory(base, base + 1, base + 2))
    moved = tmp / "zk-moved.yaml"
    moved.write_text(zk_inventory(base + 3, base + 1, base + 2))
    try:
        ok(kops("up", "-i", str(inv), "--timeout", "300", env=environ))
        yield inv, moved, environ, base
    finally:
        kops("down", "--purge", "-i", str(inv), env=environ)


@pytest.fixture(scope="module")
def kr_cluster(env, own_clusters_module):
    environ, tmp = env
    own_clusters_module(KR_NAME)
    inv = tmp / "kr.yaml"
    inv.write_text(kr_inventory("4.4.0"))
    try:
        ok(kops("up", "-i", str(inv), "--timeout", "300", env=environ))
        yield inv, environ
    finally:
        kops("down", "--purge", "-i", str(inv), env=environ)


def zk_shell(inv, env, *words) -> str:
    p = ok(kops("exec", "zoo1", "-i", str(inv), "--", "sh", "-c",
                'zookeeper-shell.sh "$ZOOKEEPER_CONNECT" ' + " ".join(words), env=env))
    return p.stdout


def test_status_reads_registrations_from_zookeeper(zk_cluster, docker_client):
    from kops.kafka import zookeeper

    inv, _moved, env, base = zk_cluster
    code, st = status_of(inv, env)
    assert code == 0 and st["state"] == "healthy", st["problems"]
    assert st["kafka"]["registrations_from"].startswith(f"zookeeper 127.0.0.1:{base}")
    assert st["kafka"]["brokers"] == {"1": f"127.0.0.1:{base + 1}"} and st["kafka"]["controller"] == 1
    t0 = time.monotonic()
    reg = zookeeper.registrations([f"127.0.0.1:{base}"])
    print(f"FIGURES {json.dumps({'zookeeper_read_seconds': round(time.monotonic() - t0, 3)})}")
    assert reg.brokers == [1] and reg.controller == 1

    # the broken state: the broker runs, its metadata cache says registered, ZooKeeper has no /brokers/ids/1
    zk_shell(inv, env, "delete", "/brokers/ids/1")
    assert zk_shell(inv, env, "ls", "/brokers/ids").strip().splitlines()[-1] == "[]"
    code, st = status_of(inv, env)
    assert code == 1 and st["state"] == "degraded", st
    kafka1 = next(n for n in st["nodes"] if n["name"] == "kafka1")
    assert kafka1["state"] == "running" and not kafka1["healthy"]
    assert kafka1["health"].startswith("not registered in ZooKeeper"), kafka1
    assert any(p.startswith("kafka1: running, not registered in ZooKeeper") for p in st["problems"]), st["problems"]
    assert st["kafka"]["brokers"] == {} and st["kafka"]["brokers_in_metadata"] == {"1": f"127.0.0.1:{base + 1}"}
    table = kops("status", "-i", str(inv), env=env)
    assert table.returncode == 1 and "brokers registered 0/1" in table.stdout, table.stdout

    # the broker restarted registers again: healthy
    ok(kops("restart", "-i", str(inv), "--node", "kafka1", "--force", env=env))
    code, st = status_of(inv, env)
    assert code == 0 and st["kafka"]["brokers"] == {"1": f"127.0.0.1:{base + 1}"}, st


def test_zookeeper_port_move_refused_then_down_up_moves_it(zk_cluster, docker_client):
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, moved, env, base = zk_cluster
    boot = f"127.0.0.1:{base + 1}"
    admin = AdminClient({"bootstrap.servers": boot})
    admin.create_topics([NewTopic(TOPIC, 3, 1)])[TOPIC].result(30)
    before = started(docker_client, ZK_NAME)
    with Load(boot, TOPIC) as load:
        load.flowing()
        for dry in (["--dry-run"], []):
            p = kops("up", "-i", str(moved), *dry, env=env)
            assert p.returncode == 2, (p.stdout, p.stderr)
            assert (f"a ZooKeeper client address changes on a running cluster: zoo1 zoo1:{base} -> "
                    f"zoo1:{base + 3}") in p.stderr
            assert "The running broker(s) kafka1 dial the old address" in p.stderr
            assert "reconfigure zoo1" in p.stderr and "reconfigure kafka1" in p.stderr
            assert "Hint: stop the cluster (`kops down`, data kept), then `kops up`" in p.stderr
        assert started(docker_client, ZK_NAME) == before, "a refused change must not restart anything"

        # the way the hint names: down (data kept), then up on the new address
        t0 = time.monotonic()
        ok(kops("down", "-i", str(moved), env=env))
        plan = ok(kops("up", "-i", str(moved), "--dry-run", env=env))
        assert "at once:" in plan.stdout and "reconfigure zoo1" in plan.stdout, plan.stdout
        ok(kops("up", "-i", str(moved), "--timeout", "300", env=env))
        seconds = time.monotonic() - t0
        load.flowing(acked=len(load.acked) + 50, timeout=120)   # the producer gets through again
    code, st = status_of(moved, env)
    assert code == 0, st["problems"]
    zoo1 = next(n for n in st["nodes"] if n["name"] == "zoo1")
    assert zoo1["addresses"]["host"] == f"127.0.0.1:{base + 3}"
    assert st["kafka"]["registrations_from"].startswith(f"zookeeper 127.0.0.1:{base + 3}")
    load.verify(boot, "ZooKeeper client port moved (down, up)", seconds)
    # the inventory says the new port: the next up has nothing to do
    p = ok(kops("up", "-i", str(moved), "--dry-run", env=env))
    assert "reconfigure" not in p.stdout


def test_downgrade_below_the_finalized_metadata_version_is_refused(kr_cluster, docker_client):
    inv, env = kr_cluster
    before = started(docker_client, KR_NAME)
    code, st = status_of(inv, env)
    assert code == 0 and st["kafka"]["brokers"].keys() == {"1", "2", "3"}, st
    assert st["kafka"]["registrations_from"].startswith("the controller quorum's metadata")
    d = kops("upgrade", "-i", str(inv), "--to", "4.3.2", "--dry-run", env=env)
    print(d.stdout)
    assert d.returncode == 2, (d.stdout, d.stderr)
    assert "problem: kafka.version: the cluster's metadata.version is 4.4-IV" in d.stdout
    assert "(finalized); Kafka 4.3.2 supports at most 4.3-IVx" in d.stdout
    p = kops("upgrade", "-i", str(inv), "--to", "4.3.2", env=env)
    assert p.returncode == 2 and "the cluster's metadata.version is 4.4-IV" in p.stderr, p.stderr
    assert "nothing was changed" in p.stderr
    # `kops up` of an inventory that says 4.3.2 runs the same preflight
    down = inv.parent / "kr-4.3.2.yaml"
    down.write_text(kr_inventory("4.3.2"))
    u = kops("up", "-i", str(down), env=env)
    assert u.returncode == 2 and "the cluster's metadata.version is 4.4-IV" in u.stderr, u.stderr
    assert started(docker_client, KR_NAME) == before, "a refused downgrade must not restart anything"
    # a patch release of the same minor is no downgrade of the feature level: no refusal for it
    same = kops("upgrade", "-i", str(inv), "--to", "4.4.0", "--dry-run", env=env)
    assert "metadata.version" not in same.stdout + same.stderr


def test_kraft_broker_cut_off_from_the_quorum_is_not_registered(kr_cluster, docker_client):
    inv, env = kr_cluster
    from kops.bundle.render import network_name

    net = docker_client.networks.get(network_name(KR_NAME))
    kafka3 = docker_client.containers.get(f"{KR_NAME}-kafka3")
    net.disconnect(kafka3)
    try:
        def fenced():
            code, st = status_of(inv, env)
            row = next(n for n in st["nodes"] if n["name"] == "kafka3")
            assert code == 1 and row["state"] == "running" and row["health"].startswith("not registered"), row
            return st
        st = poll(fenced, timeout=90, interval=2, what="kafka3 fenced by the controller, status saying so")
        assert any(p.startswith("kafka3: running, not registered") for p in st["problems"]), st["problems"]
        assert set(st["kafka"]["brokers"]) == {"1", "2"}
    finally:
        net.connect(kafka3, aliases=["kafka3"])
    ok(kops("status", "-i", str(inv), "--wait", "120", env=env))


def test_kraft_controller_port_move_rolls_under_load(kr_cluster, docker_client):
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, env = kr_cluster
    boot = status_of(inv, env)[1]["bootstrap_servers"]
    admin = AdminClient({"bootstrap.servers": boot})   # alive until the future resolves
    admin.create_topics([NewTopic(TOPIC, 3, 3)])[TOPIC].result(30)
    moved = inv.parent / "kr-moved.yaml"
    moved.write_text(kr_inventory("4.4.0", controller_port=19292))
    d = ok(kops("up", "-i", str(moved), "--dry-run", env=env))
    assert d.stdout.count("reconfigure kafka") == 3 and "at once" not in d.stdout, d.stdout   # one at a time
    with Load(boot, TOPIC) as load:
        load.flowing()
        p = kops("up", "-i", str(moved), "--timeout", "600", env=env)
    ok(p)
    load.verify(boot, "KRaft controller port moved (rolled)", p.seconds)
    q = ok(kops("exec", "kafka2", "-i", str(moved), "--", "sh", "-c",
                'kafka-metadata-quorum --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" describe --status', env=env))
    voters = next(line for line in q.stdout.splitlines() if line.startswith("CurrentVoters"))
    assert all(f"CONTROLLER://kafka{i}:{19291 + i}" in voters for i in (1, 2, 3)), voters
    code, st = status_of(moved, env)
    assert code == 0, st["problems"]
