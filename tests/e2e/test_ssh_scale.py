"""Scaling a KRaft cluster down over SSH (issue 22, SSH parity): three VM-like hosts (systemd +
sshd containers, group ``sshscale``), Kafka 4.4.0 with three dedicated controllers and
three brokers, one of each on each host. The SSH provider knows the nodes it placed from kops's record
(``placed.json`` in kops's state), so a broker left out of the inventory is drained,
stopped, unregistered and removed (unit, config, data and logs gone from its host) under an
acks=all idempotent producer with nothing acknowledged lost; then the controller quorum
(dynamic, KIP-853) shrinks from 3 to 1 over SSH; `down --purge` forgets the
record. One set of hosts for the module; the tests build on each other (run with ``-x``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import testhosts

import kopsrun
from kopsrun import json_of, ok, poll

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
from load import Load  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GROUP = "sshscale"
NAME = "sshscale1"
NAMES = ["vm1", "vm2", "vm3"]
TIMINGS: dict[str, float] = {}


class Lab:
    def __init__(self, hosts, key: Path, tmp: Path):
        self.hosts, self.key, self.tmp = hosts, key, tmp
        self.state = tmp / "state"
        self.env = {**os.environ, "KOPS_STATE_DIR": str(self.state), "NO_COLOR": "1", "COLUMNS": "200"}
        self.inv = tmp / f"{NAME}.yaml"

    def host(self, name: str):
        return next(h for h in self.hosts if h.name == name)

    def write(self, *, brokers: int, controllers: int) -> Path:
        roles = {h.name: "controller, broker" for h in self.hosts}   # controllers and brokers fill them in order
        lines = [f"name: {NAME}", "profile: fast", "kafka:", "  version: 4.4.0", "  mode: kraft", "  heap: 256m",
                 # min.insync.replicas 2 on the loaded topic only: with 2 brokers a cluster-wide 2 would
                 # block every roll (the safe-to-stop gate) of the quorum test
                 "  config:", "    min.insync.replicas: 1", "    default.replication.factor: 2",
                 # the same with 2 brokers as with 3: the brokers that stay are not rolled
                 "    offsets.topic.replication.factor: 2", "    transaction.state.log.replication.factor: 2",
                 f"controllers: {{nodes: {controllers}}}", f"brokers: {{nodes: {brokers}}}", "driver: ssh",
                 f"ssh: {{known_hosts: {testhosts.known_hosts_of(self.key)}}}", "hosts:"]
        lines += [f"  {h.name}: {{address: {h.address}, user: root, key: {self.key}, roles: [{roles[h.name]}]}}"
                  for h in self.hosts]
        self.inv.write_text("\n".join(lines) + "\n")
        return self.inv

    def placed(self) -> dict:
        path = self.state / "clusters" / NAME / "placed.json"
        return json.loads(path.read_text()) if path.is_file() else {}


@pytest.fixture(scope="module")
def lab(docker_client, tmp_path_factory, request):
    import docker

    try:
        docker_client.images.get(testhosts.BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the base image {testhosts.BASE_IMAGE} is missing; run `make test` (or scripts/setup.sh)",
                    pytrace=False)
    tmp = tmp_path_factory.mktemp(GROUP)
    key = testhosts.make_key(tmp)
    testhosts.cleanup(docker_client, GROUP)
    lab = None
    try:
        t0 = time.monotonic()
        lab = Lab(testhosts.start_hosts(docker_client, GROUP, NAMES, key), key, tmp)
        TIMINGS["start 3 test hosts"] = time.monotonic() - t0
        yield lab
    finally:
        if lab is not None and lab.inv.is_file():
            kops(lab, "down", "-i", lab.inv, "--purge", timeout=300)
        testhosts.cleanup(docker_client, GROUP)
        _report(request.config)


def _report(config) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    cap = config.pluginmanager.get_plugin("capturemanager")
    if tr is None or not TIMINGS:
        return
    line = "ssh scale timings: " + "; ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items())
    if cap is not None:
        with cap.global_and_fixture_disabled():
            tr.write_line("")
            tr.write_line(line)
    else:
        tr.write_line(line)


def kops(lab: Lab, *args, timeout: float = 600):
    return kopsrun.kops(*args, env=lab.env, timeout=timeout)


def sh(host, cmd: str) -> tuple[int, str]:
    res = host.container.exec_run(["sh", "-c", cmd])
    return res.exit_code, res.output.decode(errors="replace")


def status(lab: Lab, *extra) -> dict:
    return json_of(kops(lab, "status", "-i", lab.inv, "--output", "json", *extra, timeout=180))


def traces(host, node: str) -> str:
    """What is left of ``node`` on ``host`` (empty: nothing)."""
    _, text = sh(host, f"ls -d /etc/systemd/system/kops-{NAME}-{node}.service /etc/kops/{NAME}/{node} "
                       f"/var/lib/kops/{NAME}/{node} /var/log/kops/{NAME}/{node} 2>/dev/null; "
                       f"systemctl list-units --all --plain --no-legend 'kops-{NAME}-{node}*' | grep -v not-found")
    return text.strip()


def test_up_records_the_nodes_it_placed(lab):
    inv = lab.write(brokers=3, controllers=3)
    t0 = time.monotonic()
    ok(kops(lab, "up", "-i", inv, "--timeout", "300"))
    TIMINGS["up: 3 controllers + 3 brokers on 3 hosts"] = time.monotonic() - t0
    placed = lab.placed()
    assert sorted(placed) == ["controller1", "controller2", "controller3", "kafka1", "kafka2", "kafka3"], placed
    k3 = placed["kafka3"]
    assert (k3["host"], k3["role"], k3["id"], k3["unit"]) == ("vm3", "broker", 3, f"kops-{NAME}-kafka3.service")
    assert k3["address"] == lab.host("vm3").address and k3["user"] == "root" and k3["port"] == 22
    assert f"/var/lib/kops/{NAME}/kafka3" in k3["folders"]
    text = (lab.state / "clusters" / NAME / "placed.json").read_text().lower()
    assert "password" not in text and "private" not in text, text


def test_a_broker_leaves_under_load_nothing_acknowledged_lost(lab):
    st = status(lab)
    assert st["state"] == "healthy" and sorted(st["kafka"]["brokers"]) == ["1", "2", "3"], st
    bs = st["bootstrap_servers"]
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic("scale", 6, 2, config={"min.insync.replicas": "2"})])["scale"].result(timeout=40)
    poll(lambda: all(p.leader >= 0 for p in admin.list_topics("scale", timeout=10).topics["scale"].partitions.values())
         and len(admin.list_topics("scale", timeout=10).topics["scale"].partitions) == 6,
         timeout=60, what="leaders of topic scale")
    inv = lab.write(brokers=2, controllers=3)
    dry = ok(kops(lab, "up", "-i", inv, "--dry-run"))
    assert "remove kafka3 on vm3" in dry.stdout and "unregister" in dry.stdout, dry.stdout
    with Load(bs, "scale") as load:
        load.flowing()
        t0 = time.monotonic()
        proc = kops(lab, "up", "-i", inv, "--timeout", "300")
        seconds = time.monotonic() - t0
    ok(proc)
    TIMINGS["3 -> 2 brokers under load (drain, stop, unregister, remove)"] = seconds
    out = proc.stdout + proc.stderr
    print(f"\n--- kops up (3 -> 2 brokers)\n{out}")
    assert "broker 3 unregistered from the KRaft metadata" in out, out
    assert "kafka3: unit, config, data and logs removed from vm3" in out, out
    figures = load.verify(bs.replace(f",{lab.host('vm3').address}:9092", ""), "3 -> 2 brokers over SSH", seconds)
    assert figures["lost"] == 0
    # gone from its host: unit, config, data and logs (controller3 stays there)
    vm3 = lab.host("vm3")
    assert traces(vm3, "kafka3") == ""
    for top in ("/etc/kops", "/var/lib/kops", "/var/log/kops"):
        assert sh(vm3, f"ls {top}/{NAME}")[1].split() == ["controller3"], top
    assert "kafka3" not in lab.placed()
    st = status(lab, "--wait", "60")
    assert st["state"] == "healthy", st["problems"]
    assert "kafka3" not in {n["name"] for n in st["nodes"]}, st["nodes"]
    assert sorted(st["kafka"]["brokers"]) == ["1", "2"], st["kafka"]
    # Kafka's own view, through its tool on a host: broker 3 is not there any more
    p = ok(kops(lab, "exec", "-i", inv, "kafka1", "--", "sh", "-c",
                'kafka-broker-api-versions.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" | grep "(id: "'))
    ids = sorted(int(line.split("(id: ")[1].split()[0]) for line in p.stdout.splitlines() if "(id: " in line)
    assert ids == [1, 2], p.stdout
    again = ok(kops(lab, "up", "-i", inv))
    assert "nothing to change" in again.stdout + again.stderr, again.stdout + again.stderr
    print("\nFIGURES-ALL " + json.dumps([figures]))
    admin.delete_topics(["scale"])["scale"].result(timeout=40)   # its min.insync.replicas 2 would block rolls


def test_controllers_3_to_1_over_ssh(lab):
    """The dynamic quorum (KIP-853) over SSH: two controllers leave (the active one last),
    each removed from the voters, stopped, its unit and folders removed from its host; vm3,
    left with no node of the cluster, loses the cluster's folders and the distribution.
    (3 -> 1 rather than 1 -> 3 -> 1: adding is the inventory's nodes, as before; a quorum of
    2 is refused, even; 1 -> 3 took 83 s more here.)"""
    inv = lab.write(brokers=2, controllers=1)
    dry = ok(kops(lab, "up", "-i", inv, "--dry-run"))
    assert "remove-controller controller3" in dry.stdout and "remove controller2 on vm2" in dry.stdout, dry.stdout
    t0 = time.monotonic()
    proc = ok(kops(lab, "up", "-i", inv, "--timeout", "400"))
    TIMINGS["controllers 3 -> 1"] = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    print(f"\n--- kops up (3 -> 1 controllers)\n{out}")
    for n, vm in (("controller2", "vm2"), ("controller3", "vm3")):
        assert f"{n}: removed from the KRaft quorum's voters" in out or f"{n}: no longer a voter" in out, out
        assert traces(lab.host(vm), n) == "", n
        assert n not in lab.placed()
    _, left = sh(lab.host("vm3"), f"ls -d /etc/kops/{NAME} /var/lib/kops/{NAME} /var/log/kops/{NAME} /opt/kops "
                                  f"/etc/profile.d/kops-{NAME}.sh 2>/dev/null")
    assert left.strip() == "", left
    st = status(lab, "--wait", "60")
    assert st["state"] == "healthy", st["problems"]
    assert sorted(n["name"] for n in st["nodes"]) == ["controller1", "kafka1", "kafka2"], st["nodes"]
    assert st["kafka"]["controller"] == 101
    print("\n--- kops status\n" + ok(kops(lab, "status", "-i", inv)).stdout)


def test_purge_forgets_the_record(lab):
    ok(kops(lab, "down", "-i", lab.inv, "--purge"))
    assert not (lab.state / "clusters" / NAME / "placed.json").exists()
    for h in lab.hosts:
        _, left = sh(h, f"ls -d /etc/kops/{NAME} /var/lib/kops/{NAME} /etc/systemd/system/kops-{NAME}-* 2>/dev/null")
        assert left.strip() == "", (h.name, left)
