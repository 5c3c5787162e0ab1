"""ZooKeeper to KRaft over SSH, on three VM-like hosts (systemd + sshd containers), each
with a ZooKeeper and a broker (3.9.2), under a continuous acks=all idempotent producer:
`kops migrate --to-kraft` puts a KRaft controller on each ZooKeeper host (its own unit),
rolls the brokers' units into migration and then to KRaft, the controllers out of
migration, and stops the ZooKeeper units (data kept); every acknowledged message is read
back, the messages written before are all there, and the rewritten inventory's `kops up`
has nothing to change. A group of its own (t13mig): it never touches the hosts of the
other e2e modules."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

import kopsrun
import testhosts

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
from load import Load  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

GROUP = "t13mig"
NAME = "t13-ssh-mig"


@pytest.fixture(scope="module")
def hosts(docker_client, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(GROUP)
    key = testhosts.make_key(tmp)
    testhosts.cleanup(docker_client, GROUP)
    try:
        yield testhosts.start_hosts(docker_client, GROUP, ["vm1", "vm2", "vm3"], key), key, tmp
    finally:
        testhosts.cleanup(docker_client, GROUP)


def test_zookeeper_cluster_on_three_hosts_migrates_to_kraft_under_load(hosts):
    vms, key, tmp = hosts
    inv = tmp / f"{NAME}.yaml"
    inv.write_text(testhosts.inventory(NAME, vms, key, mode="zookeeper", version="3.9.2",
                                       roles=["zookeeper", "broker"]).replace("heap: 384m", "heap: 256m"))
    env = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1"}

    def kops(*args, timeout=1200):
        return kopsrun.kops(*args, env=env, timeout=timeout)

    up = kops("up", "-i", inv, "--timeout", "600")
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        boot = json.loads(kops("status", "-i", inv, "--output", "json").stdout)["bootstrap_servers"]
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": boot, "acks": "all"})
        for i in range(300):
            p.produce("before", key=f"b-{i}".encode(), value=b"v")
        assert p.flush(60) == 0
        dry = kops("migrate", "-i", inv, "--to-kraft", "--dry-run")
        assert dry.returncode == 0 and "create controller1 on vm1" in dry.stdout, dry.stdout + dry.stderr
        with Load(boot, "ssh-migrate") as load:
            load.flowing()
            t0 = time.monotonic()
            mig = kops("migrate", "-i", inv, "--to-kraft")
            seconds = time.monotonic() - t0
        assert mig.returncode == 0, mig.stderr[-5000:]
        figures = load.verify(boot, "migrate ZooKeeper -> KRaft over SSH (3 hosts)", seconds)
        st = json.loads(kops("status", "-i", inv, "--output", "json", "--wait", "60").stdout)
        assert st["mode"] == "kraft" and st["state"] == "healthy", st["problems"]
        nodes = {n["name"]: n for n in st["nodes"]}
        assert {nodes[f"controller{i}"]["where"] for i in (1, 2, 3)} == {"vm1", "vm2", "vm3"}
        # kops knows from its record which nodes it placed: the retired ZooKeepers are listed
        assert all(nodes[f"zoo{i}"]["health"] == "retired (migrated to KRaft)" for i in (1, 2, 3)), \
            {n: v["health"] for n, v in nodes.items()}
        for vm in vms:
            unit = vm.container.exec_run(["systemctl", "is-active", f"kops-{NAME}-zoo{vm.name[-1]}.service"])
            assert unit.output.decode().strip() != "active", "ZooKeeper stopped"
            props = vm.container.exec_run(["cat", f"/etc/kops/{NAME}/kafka{vm.name[-1]}/server.properties"])
            text = props.output.decode()
            assert "process.roles=broker" in text and "zookeeper.connect" not in text, text
        assert "mode: kraft" in inv.read_text()
        again = kops("up", "-i", inv)
        assert again.returncode == 0 and "nothing to change" in again.stderr, again.stderr[-2000:]
        from confluent_kafka import Consumer

        c = Consumer({"bootstrap.servers": boot, "group.id": "ssh-count", "auto.offset.reset": "earliest"})
        c.subscribe(["before"])
        seen, deadline = set(), time.monotonic() + 60
        while len(seen) < 300 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.add(m.key())
        c.close()
        assert len(seen) == 300
        print("\nFIGURES-ALL " + json.dumps([figures]))
    finally:
        kops("down", "-i", inv, "--purge")
