"""A ZooKeeper-to-KRaft migration stopped while the brokers roll to KRaft (kops killed) is
rolled back (`kops migrate --rollback`), under a continuous acks=all idempotent producer:
the brokers back in ZooKeeper mode, the controllers gone, the data and a consumer group's
committed offsets intact, the inventory untouched, and its `kops up` has nothing left to
change. Its own file, so that it runs beside test_migrate.py."""

from __future__ import annotations

import json
import time

import pytest
from load import Load, kops, ok
from migration import bootstrap, cluster, committed_now, run_until, seed, seed_count  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def test_migration_rolled_back_while_brokers_go_to_kraft(cluster, docker_client):
    name, inv, env = cluster(1, 3)
    boot = bootstrap(inv, env)
    before = seed(boot, "audit")
    original = inv.read_text()
    with Load(boot, "load-rollback") as load:
        load.flowing()
        t0 = time.monotonic()
        run_until(env, ["migrate", "-i", str(inv), "--to-kraft", "--controllers", "1"], "phase 4/6 brokers-kraft",
                  after="kafka1: created and started")
        dry = ok(kops("migrate", "-i", str(inv), "--rollback", "--dry-run", env=env))
        assert "brokers-back-to-migration" in dry.stdout and "controllers-removed" in dry.stdout, dry.stdout
        p = ok(kops("migrate", "-i", str(inv), "--rollback", env=env))
        seconds = time.monotonic() - t0
    figures = load.verify(boot, "migration to phase 4, then rolled back to ZooKeeper", seconds)
    assert "back in ZooKeeper mode" in p.stdout
    assert inv.read_text() == original, "a rollback leaves the ZooKeeper inventory as it was"
    nodes = {c.labels["io.kops.node"]: c for c in docker_client.containers.list(
        all=True, filters={"label": f"io.kops.cluster={name}"})}
    assert set(nodes) == {"zoo1", "kafka1", "kafka2", "kafka3"}, sorted(nodes)
    assert all(nodes[f"kafka{i}"].labels["io.kops.mode"] == "zookeeper" for i in (1, 2, 3))
    st = json.loads(ok(kops("status", "-i", str(inv), "--output", "json", "--wait", "60", env=env)).stdout)
    assert st["state"] == "healthy" and st["mode"] == "zookeeper", st["problems"]
    up = ok(kops("up", "-i", str(inv), env=env))
    assert "nothing to change" in up.stderr, up.stderr
    assert seed_count(boot) == 600
    assert committed_now(boot, "audit") == before
    d = json.loads(ok(kops("migrate", "-i", str(inv), "--status", "--output", "json", env=env)).stdout)
    assert d["state"] == "rolled-back"
    print("\nFIGURES-ALL " + json.dumps([figures]))
