"""What a daily user trips over, on real clusters (Docker engine, real Kafka, real client).

* the hints kops prints carry the target the user gave, and followed literally they act
  on that cluster, never on the default one;
* a command without a target refuses to guess when several clusters exist;
* a config key typo is refused before anything changes, with "did you mean";
* a value Kafka refuses at start rolls back: the previous container and config are put
  back, the node serves again, data kept, exit 1;
* `kops check` and `kops up` leave none of kops's own topics behind;
* `kops status` fits 100 columns with whole addresses; a crashed node and a node stopped
  by `kops down` are told apart (degraded, exit 1 / stopped, exit 3);
* `kops init -o FILE` names the cluster after the file; an inventory that shares its name
  with a cluster made from another one cannot reshape it without --reshape.

Every cluster here has a name of its own and ports found free (``ports()``), so the tests run beside a
user's cluster; each test purges what it made.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import pytest
import yaml

import kopsrun
from cleanup import free_base
from kopsrun import ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LABEL = "io.kops.cluster"


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "KOPS_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "100"}


def kops(env, *args, timeout=420, cwd=None):
    return kopsrun.kops(*args, env=env, timeout=timeout, cwd=cwd)


@pytest.fixture
def clusters(own_clusters):
    return own_clusters


def ports() -> int:
    """A base for ``inventory``'s ports (brokers +0.., docker +100.., internal +200.., ZooKeeper
    +281), free now: no fixed port, which anything on the machine may hold."""
    return free_base([o + i for o in (0, 100, 200) for i in range(3)] + [281])


def inventory(tmp_path: Path, name: str, port: int, *, brokers: int = 1, extra: dict | None = None,
              file: str | None = None) -> Path:
    data = {"name": name, "profile": "fast", "kafka": {"version": "3.9.2", "heap": "256m"},
            "zookeeper": {"nodes": 1, "heap": "128m", "client_port": port + 281},
            "brokers": {"nodes": brokers, "external_port": port, "docker_port": port + 100,
                        "internal_port": port + 200}}
    for k, v in (extra or {}).items():
        data.setdefault(k, {}).update(v) if isinstance(v, dict) and isinstance(data.get(k), dict) else \
            data.__setitem__(k, v)
    path = tmp_path / (file or f"{name}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def started(client, name: str) -> dict[str, tuple[str, str]]:
    return {c.labels["io.kops.node"]: (c.id, c.attrs["State"]["StartedAt"])
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
            if "io.kops.node" in c.labels}


def topics(bootstrap: str) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20).topics)


# -- hints and targets ---------------------------------------------------------------------------

def test_hints_carry_the_target_and_act_on_it(docker_client, clusters, env, tmp_path):
    name = clusters(f"hint-{uuid.uuid4().hex[:6]}")
    inv = inventory(tmp_path, name, ports())
    up = ok(kops(env, "up", "-i", inv))
    assert f"kops status -i {inv}" in up.stdout and f"kops down -i {inv}" in up.stdout, up.stdout
    down = ok(kops(env, "down", "-i", inv))
    assert f"cluster {name} stopped: kafka1 zoo1; data kept" in down.stdout, down.stdout
    hint = re.search(r"`(kops up[^`]*)`", down.stderr)
    assert hint and hint.group(1) == f"kops up -i {inv}", down.stderr
    # followed literally, the hint brings back this cluster (and nothing else)
    again = ok(kops(env, *hint.group(1).split()[1:]))
    assert f"cluster {name} ready" in again.stdout
    assert {n: c.status for n, c in
            ((c.labels["io.kops.node"], c) for c in docker_client.containers.list(
                all=True, filters={"label": f"{LABEL}={name}"}))} == {"zoo1": "running", "kafka1": "running"}
    ok(kops(env, "down", "-i", inv, "--purge"))


def test_ambiguous_target_is_refused(docker_client, clusters, env, tmp_path):
    a = clusters(f"amb-a-{uuid.uuid4().hex[:4]}")
    b = clusters(f"amb-b-{uuid.uuid4().hex[:4]}")
    ok(kops(env, "up", "-i", inventory(tmp_path, a, ports())))
    ok(kops(env, "up", "-i", inventory(tmp_path, b, ports())))
    before = started(docker_client, a) | {f"b-{k}": v for k, v in started(docker_client, b).items()}
    for args in (["logs", "kafka1"], ["status"], ["down"], ["check"]):
        p = kops(env, *args)
        assert p.returncode == 2, f"kops {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
        assert "which cluster?" in p.stderr and a in p.stderr and b in p.stderr, p.stderr
        assert f"--name {a}" in p.stderr
    after = started(docker_client, a) | {f"b-{k}": v for k, v in started(docker_client, b).items()}
    assert after == before, "a refused command changed a cluster"
    # with the name, the same command acts on that cluster only
    logs = ok(kops(env, "logs", "kafka1", "--name", a, "--tail", "5"))
    assert logs.stdout.strip()
    p = kops(env, "logs", "kafka9", "--name", a)
    assert p.returncode == 2 and "has no node 'kafka9'" in p.stderr and "kafka1" in p.stderr, p.stderr


def test_init_names_the_cluster_after_its_file(env, tmp_path):
    p = ok(kops(env, "init", "-o", "dev.yaml", cwd=tmp_path))
    assert yaml.safe_load((tmp_path / "dev.yaml").read_text())["name"] == "dev", p.stderr
    ok(kops(env, "init", "--preset", "kraft-split", "-o", "My_Team.yml", cwd=tmp_path))
    assert yaml.safe_load((tmp_path / "My_Team.yml").read_text())["name"] == "my-team"
    ok(kops(env, "init", "-o", "x.yaml", "--name", "other", cwd=tmp_path))
    assert yaml.safe_load((tmp_path / "x.yaml").read_text())["name"] == "other"
    p = kops(env, "init", "-o", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 2 and "is a folder" in p.stderr, p.stderr


def test_same_name_from_another_inventory_cannot_reshape(docker_client, clusters, env, tmp_path):
    name = clusters(f"shape-{uuid.uuid4().hex[:6]}")
    base = ports()
    first = inventory(tmp_path, name, base, file="first.yaml")
    ok(kops(env, "up", "-i", first))
    before = started(docker_client, name)
    second = inventory(tmp_path, name, base, brokers=3, file="second.yaml")
    p = kops(env, "up", "-i", second)
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert f"was made from file {first}" in p.stderr and "kafka2 would be added" in p.stderr, p.stderr
    assert "create kafka2" in p.stderr, "the plan it would run is shown"
    assert started(docker_client, name) == before, "a refused up changed the cluster"
    ok(kops(env, "up", "-i", second, "--reshape"))
    assert set(started(docker_client, name)) == {"zoo1", "kafka1", "kafka2", "kafka3"}
    ok(kops(env, "down", "-i", second, "--purge"))


# -- config mistakes -----------------------------------------------------------------------------

@pytest.mark.parametrize("config, fragments", [
    ({"min.insync.replica": 1}, ["kafka.config.min.insync.replica: not a broker config of Kafka 3.9.2",
                                  "did you mean min.insync.replicas?"]),
    ({"num.network.threads": "abc"}, ["kafka.config.num.network.threads: 'abc' is not a number of type int"]),
    ({"num.network.threads": 0}, ["kafka.config.num.network.threads: 0 is out of range"]),
    ({"compression.type": "zip"}, ["kafka.config.compression.type: 'zip' is not allowed", "zstd"]),
], ids=["typo", "not-a-number", "out-of-range", "not-allowed"])
def test_config_mistakes_are_refused_before_anything_changes(docker_client, clusters, env, tmp_path, config,
                                                            fragments):
    name = clusters(f"cfg-{uuid.uuid4().hex[:6]}")
    base = ports()
    inv = inventory(tmp_path, name, base, extra={"kafka": {"config": config}})
    for args in (["up", "-i", inv], ["up", "-i", inv, "--dry-run"], ["render", "-i", inv, "-o", tmp_path / "o"]):
        p = kops(env, *args)
        assert p.returncode == 2, f"kops {args[0]}: exit {p.returncode}\n{p.stderr}"
        for f in fragments:
            assert f in p.stderr, f"{f!r} not in:\n{p.stderr}"
    assert not docker_client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
    assert not docker_client.networks.list(filters={"label": f"{LABEL}={name}"})
    # the escape hatch: a plugin's key, declared, passes
    inv = inventory(tmp_path, name, base, extra={"kafka": {"config": {"my.reporter.url": "http://x"},
                                                            "custom_keys": ["my.reporter.*"]}})
    ok(kops(env, "up", "-i", inv, "--dry-run"))


def test_bad_value_at_start_rolls_back(docker_client, clusters, env, tmp_path):
    """replica.fetch.wait.max.ms above replica.socket.timeout.ms passes the type checks and
    makes the broker refuse to start: the previous container comes back, data kept."""
    from confluent_kafka import Consumer, Producer

    name = clusters(f"roll-{uuid.uuid4().hex[:6]}")
    base = ports()
    inv = inventory(tmp_path, name, base, brokers=3,
                    extra={"kafka": {"config": {"min.insync.replicas": 1}}})
    ok(kops(env, "up", "-i", inv))
    bs = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    topic = f"keep-{uuid.uuid4().hex[:6]}"
    prod = Producer({"bootstrap.servers": bs, "acks": "all"})
    for i in range(50):
        prod.produce(topic, f"m{i}".encode())
    assert prod.flush(60) == 0
    before = started(docker_client, name)
    bad = inventory(tmp_path, name, base, brokers=3, file="bad.yaml",
                    extra={"kafka": {"config": {"min.insync.replicas": 1}},
                           "nodes": {"kafka2": {"config": {"replica.fetch.wait.max.ms": 40000}}}})
    p = kops(env, "up", "-i", bad, "--timeout", "240")
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "kafka2 did not come up with the new config, so the previous config was put back" in p.stderr, p.stderr
    assert "replica.fetch.wait.max.ms" in p.stderr, "the broker's own reason is shown"
    assert "ready" not in p.stdout.lower() or "is degraded" in p.stdout
    after = started(docker_client, name)
    assert after["kafka2"][0] == before["kafka2"][0], "kafka2 is not its previous container"
    assert {n: v for n, v in after.items() if n != "kafka2"} == {n: v for n, v in before.items() if n != "kafka2"}
    assert not [c.name for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
                if c.name.endswith("-previous")]
    st = json.loads(kops(env, "status", "-i", inv, "--output", "json", "--wait", "60").stdout)
    assert st["state"] == "healthy", st["problems"]
    cons = Consumer({"bootstrap.servers": bs, "group.id": topic, "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got = set()
    import time

    deadline = time.monotonic() + 60
    while len(got) < 50 and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value())
    cons.close()
    assert len(got) == 50, f"{len(got)} of 50 messages back after the rollback"
    # the same inventory, fixed, applies
    ok(kops(env, "up", "-i", inv))
    ok(kops(env, "down", "-i", inv, "--purge"))


# -- clean up after itself, output that tells the truth --------------------------------------------

def test_check_and_up_leave_no_topics_and_status_fits(docker_client, clusters, env, tmp_path):
    name = clusters(f"tidy-{uuid.uuid4().hex[:6]}")
    base = ports()
    inv = inventory(tmp_path, name, base, brokers=3)
    ok(kops(env, "up", "-i", inv))
    bs = ",".join(f"127.0.0.1:{base + i}" for i in range(3))
    for _ in range(2):
        ok(kops(env, "check", "-i", inv, "--messages", "20"))
    assert not [t for t in topics(bs) if t.startswith("__kops")], topics(bs)

    # a roll interrupted (Ctrl-C) after kafka2's new container started leaves the old one
    # kept aside: the next `up` that finds the cluster healthy drops it
    k2 = docker_client.containers.get(f"{name}-kafka2")
    aside = docker_client.containers.create(k2.image.id, command=["true"], name=f"{name}-kafka2-previous",
                                            labels=k2.labels)
    again = ok(kops(env, "up", "-i", inv))
    assert "nothing to change" in again.stderr and "kept aside by an interrupted run" in again.stderr, again.stderr
    assert not [c for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
                if c.id == aside.id], "the kept-aside container survived a healthy up"

    # the dry run names the keys that change, read from the nodes, secrets never shown
    changed = inventory(tmp_path, name, base, brokers=3, file="changed.yaml",
                        extra={"kafka": {"config": {"log.retention.hours": 24}}})
    dry = ok(kops(env, "up", "-i", changed, "--dry-run"))
    # (the fast profile sets 168 hours; the node's own file is read, not the inventory)
    assert dry.stdout.count("server.properties (log.retention.hours 168 -> 24) changed; data kept") == 6, dry.stdout

    st = ok(kops(env, "status", "-i", inv))
    lines = st.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= 100, "\n".join(lines)
    for port in range(base, base + 3):
        assert f"127.0.0.1:{port}" in st.stdout, st.stdout   # addresses whole
    wide = ok(kops(env, "status", "-i", inv, "--wide"))
    assert f"host.docker.internal:{base + 100}" in wide.stdout and f"kafka1:{base + 200}" in wide.stdout, wide.stdout

    # a crash is not a stop
    docker_client.containers.get(f"{name}-kafka3").kill()
    p = kops(env, "status", "-i", inv, "--output", "json")
    st = json.loads(p.stdout)
    assert p.returncode == 1 and st["state"] == "degraded", (p.returncode, st["state"])
    node = next(n for n in st["nodes"] if n["name"] == "kafka3")
    assert node["health"].startswith("crashed"), node
    assert any(pr.startswith("kafka3: crashed") and f"kops logs kafka3 -i {inv}" in pr for pr in st["problems"])
    ok(kops(env, "down", "-i", inv))
    p = kops(env, "status", "-i", inv, "--output", "json")
    st = json.loads(p.stdout)
    assert p.returncode == 3 and st["state"] == "stopped", (p.returncode, st)
    assert {n["health"] for n in st["nodes"]} == {"stopped by kops down"}, st["nodes"]
    ls = ok(kops(env, "ls", "--output", "json"))
    row = next(r for r in json.loads(ls.stdout) if r["cluster"] == name)
    assert row["bootstrap_servers"] == bs and row["running"] == 0
    ok(kops(env, "down", "-i", inv, "--purge"))
