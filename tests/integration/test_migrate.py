"""ZooKeeper to KRaft on real clusters (Docker; 3.9.2, small heaps, free ports), each step
under a continuous acks=all idempotent producer whose acknowledged messages must all be
read back:

* 3 ZooKeeper + 3 brokers: `kops migrate --to-kraft` is killed in the middle of the
  brokers' roll into migration mode; `--status` names the phase, `kops up` is refused
  (exit 2) while the migration is under way, and the same command resumes to the end:
  KRaft brokers, 3 controllers, ZooKeeper stopped, the inventory rewritten; then the
  upgrade to 4.4.0 (finalized); the data written before, and a consumer group's committed
  offsets, are intact at the end; a rollback after the end is refused;
* (test_migrate_rollback.py) a migration stopped while the brokers roll to KRaft is rolled
  back.

Figures (seconds, produced, acknowledged, lost, duplicates) are printed (pytest -s).
"""

from __future__ import annotations

import json
import time

import pytest
from kopsrun import ok
from load import Load, kops
from migration import bootstrap, cluster, committed_now, run_until, seed, seed_count  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def test_migration_killed_midway_resumes_then_upgrades_with_data_and_offsets_intact(cluster, docker_client):
    name, inv, env = cluster(3, 3)
    boot = bootstrap(inv, env)
    before = seed(boot, "billing")
    dry = ok(kops("migrate", "-i", str(inv), "--to-kraft", "--dry-run", env=env))
    assert "1. controllers" in dry.stdout and "create controller3" in dry.stdout and "mode: kraft" in dry.stdout
    assert not docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}",
                                                                  "name": "controller"}), "a dry run created nodes"
    figures = []
    with Load(boot, "load-migrate") as load:
        load.flowing()
        t0 = time.monotonic()
        err = run_until(env, ["migrate", "-i", str(inv), "--to-kraft"], "phase 2/6 brokers-migrating",
                        after="kafka2: created and started")
        assert "phase 1/6 controllers" in err and "phase controllers done" in err, err
        st = ok(kops("migrate", "-i", str(inv), "--status", "--output", "json", env=env))
        where = json.loads(st.stdout)
        assert where["state"] == "migrating" and where["done"] == "controllers", where
        assert where["current"] == "brokers-migrating" and where["rollback_possible"], where
        refused = kops("up", "-i", str(inv), env=env)
        assert refused.returncode == 2 and "being migrated from ZooKeeper to KRaft" in refused.stderr, refused.stderr
        p = ok(kops("migrate", "-i", str(inv), "--to-kraft", "--output", "json", env=env))
        seconds = time.monotonic() - t0
    figures.append(load.verify(boot, "migrate ZooKeeper -> KRaft (killed in phase 2, resumed)", seconds))
    out = json.loads(p.stdout)
    assert [r["phase"] for r in out["phases"]][0] == "brokers-migrating", "resumed where it stopped"
    assert out["status"]["mode"] == "kraft" and out["status"]["state"] == "healthy", out["status"]
    assert out["inventory_written"] == str(inv)
    assert "mode: kraft" in inv.read_text() and "zookeeper" not in inv.read_text().split("written by kops")[1]
    assert (inv.parent / "cluster.yaml.zookeeper").is_file()
    labels = {c.labels["io.kops.node"]: c for c in docker_client.containers.list(
        all=True, filters={"label": f"io.kops.cluster={name}"})}
    assert {n for n, c in labels.items() if c.status == "running"} == {
        "controller1", "controller2", "controller3", "kafka1", "kafka2", "kafka3"}
    assert all(labels[f"kafka{i}"].labels["io.kops.mode"] == "kraft" for i in (1, 2, 3))
    assert all(labels[f"zoo{i}"].status == "exited" for i in (1, 2, 3)), "ZooKeeper stopped, kept"
    assert kops("migrate", "-i", str(inv), "--rollback", env=env).returncode == 2
    assert "nothing to change" in ok(kops("up", "-i", str(inv), env=env)).stderr
    with Load(boot, "load-upgrade") as load:
        load.flowing()
        p = ok(kops("upgrade", "-i", str(inv), "--to", "4.4.0", "--finalize", env=env))
    figures.append(load.verify(boot, "upgrade 3.9.2 -> 4.4.0 after the migration", p.seconds))
    assert "feature level finalized at 4.4" in p.stderr
    assert seed_count(boot) == 600, "the messages written before the migration are all there"
    assert committed_now(boot, "billing") == before, "the consumer group's committed offsets moved"
    ok(kops("migrate", "-i", str(inv), "--to-kraft", "--purge-zookeeper", env=env))
    assert not [c for c in docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}"})
                if c.labels.get("io.kops.role") == "zookeeper"]
    print("\nFIGURES-ALL " + json.dumps(figures))
