"""A ZooKeeper-to-KRaft migration stopped while the brokers roll to KRaft (kops killed) is
rolled back (`kops migrate --rollback`), under a continuous acks=all idempotent producer.
The first rollback fails for real (ZooKeeper goes down while the controllers are removed,
so its znodes cannot be deleted): exit non-zero, the error names the step, `--status`
shows the rollback under way; with ZooKeeper back, the same command resumes at that step
(nothing done before it is done again) and ends: the brokers back in ZooKeeper mode, the
controllers gone, the data and a consumer group's committed offsets intact, the inventory
untouched, and its `kops up` has nothing left to change. Its own file, so that it runs
beside test_migrate.py."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from kopsrun import KOPS, ok, poll
from load import Load, kops
from migration import bootstrap, cluster, committed_now, run_until, seed, seed_count  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def run_meanwhile(env, args, marker: str, act, *, timeout: float = 600):
    """Run kops to its end; once its progress shows ``marker``, call ``act()`` (once)."""
    proc = subprocess.Popen([KOPS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    acted = threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if marker in line and not acted.is_set():
                act()
                acted.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    out = proc.stdout.read()
    proc.wait(timeout)
    t.join(10)
    assert acted.is_set(), f"{marker!r} never shown:\n{''.join(lines)[-4000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "".join(lines))


def zookeeper_serving(container, timeout: float = 60) -> None:
    """Until the ZooKeeper in ``container`` answers `srvr` (never a fixed sleep)."""
    def serving():
        container.reload()
        if container.status != "running":
            return False
        port = container.labels.get("io.kops.client-port", "2181")
        r = container.exec_run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf srvr >&3 "
                                              "&& timeout 5 cat <&3"])
        return r.exit_code == 0 and b"Mode:" in r.output
    poll(serving, timeout=timeout, what=f"ZooKeeper in {container.name} to come back")


def test_migration_rolled_back_while_brokers_go_to_kraft(cluster, docker_client):
    name, inv, env = cluster(1, 3)
    boot = bootstrap(inv, env)
    before = seed(boot, "audit")
    original = inv.read_text()

    def nodes():
        return {c.labels["io.kops.node"]: c for c in docker_client.containers.list(
            all=True, filters={"label": f"io.kops.cluster={name}"})}

    zoo1 = nodes()["zoo1"]
    with Load(boot, "load-rollback") as load:
        load.flowing()
        t0 = time.monotonic()
        run_until(env, ["migrate", "-i", str(inv), "--to-kraft", "--controllers", "1"], "phase 4/6 brokers-kraft",
                  after="kafka1: created and started")
        dry = ok(kops("migrate", "-i", str(inv), "--rollback", "--dry-run", env=env))
        assert "brokers-back-to-migration" in dry.stdout and "controllers-removed" in dry.stdout, dry.stdout
        # the first rollback fails: ZooKeeper is killed as the controllers are being removed
        t1 = time.monotonic()
        failed = run_meanwhile(env, ["migrate", "-i", str(inv), "--rollback"],
                               "rollback: stop and remove the KRaft controllers", lambda: zoo1.kill())
        failed_seconds = time.monotonic() - t1
        assert failed.returncode != 0, failed.stderr
        err = " ".join(failed.stderr.split())
        assert "the rollback stopped at controllers-removed" in err, failed.stderr
        assert f"`kops migrate -i {inv} --rollback` runs it again from there" in err, failed.stderr
        st = json.loads(ok(kops("migrate", "-i", str(inv), "--status", "--output", "json", env=env)).stdout)
        assert st["state"] == "migrating" and st["current"] == "rollback", st
        assert st["error"].startswith("rollback, controllers-removed: "), st
        table = ok(kops("migrate", "-i", str(inv), "--status", env=env)).stdout
        assert "last error: rollback, controllers-removed" in table, table
        resume = kops("migrate", "-i", str(inv), "--to-kraft", env=env)   # its controllers are gone: refused
        assert resume.returncode == 2 and "rollback of this migration to ZooKeeper is under way" in resume.stderr, \
            resume.stderr
        # ZooKeeper back; the same command again resumes at the step that failed, nothing
        # before it done twice (the controllers it removed are not brought back)
        zoo1.start()
        zookeeper_serving(zoo1)
        again = ok(kops("migrate", "-i", str(inv), "--rollback", "--dry-run", env=env))
        assert "brokers-back-to-migration" not in again.stdout and "controllers-removed" in again.stdout, \
            again.stdout
        p = ok(kops("migrate", "-i", str(inv), "--rollback", env=env))
        seconds = time.monotonic() - t0
    figures = load.verify(boot, "migration to phase 4, a rollback failed, then rolled back to ZooKeeper", seconds)
    figures.update(failed_rollback_seconds=round(failed_seconds, 1), rollback_again_seconds=round(p.seconds, 1))
    assert "controller1" not in p.stderr, "the rerun brings no controller back:\n" + p.stderr
    assert "back in ZooKeeper mode" in p.stdout
    assert inv.read_text() == original, "a rollback leaves the ZooKeeper inventory as it was"
    now = nodes()
    assert set(now) == {"zoo1", "kafka1", "kafka2", "kafka3"}, sorted(now)
    assert all(now[f"kafka{i}"].labels["io.kops.mode"] == "zookeeper" for i in (1, 2, 3))
    st = json.loads(ok(kops("status", "-i", str(inv), "--output", "json", "--wait", "60", env=env)).stdout)
    assert st["state"] == "healthy" and st["mode"] == "zookeeper", st["problems"]
    up = ok(kops("up", "-i", str(inv), env=env))
    assert "nothing to change" in up.stderr, up.stderr
    assert seed_count(boot) == 600
    assert committed_now(boot, "audit") == before
    d = json.loads(ok(kops("migrate", "-i", str(inv), "--status", "--output", "json", env=env)).stdout)
    assert d["state"] == "rolled-back" and not d["error"], d
    print("\nFIGURES-ALL " + json.dumps([figures]))
