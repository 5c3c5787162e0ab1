"""The Docker driver against a real engine and real Kafka, driven through the `kops` CLI.

Every test runs `kops` as a user would (a subprocess, with its own KOPS_STATE_DIR) and
checks the outcome independently: containers, volumes and networks through the Docker
SDK, and Kafka through a real client (confluent-kafka / librdkafka) from the host, or the
Kafka tools in a throwaway container.

Needs a Docker engine and the kops/kafka:3.9.2 and 4.4.0 images: `make test` provides
both. Nothing is skipped: a missing piece fails with that hint.

Beside any other cluster: every preset runs under a name of its own (`--name kt-...`) on
free host ports (`--any-port`), so a user's own cluster (the one `make up` starts, on the
presets' ports) keeps running untouched while the suite runs. The custom clusters use
ports in 19000-25000.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from cleanup import remove_labelled

import kopsrun
from kopsrun import KOPS, json_of, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SETUP_HINT = "run `make test` (or scripts/setup.sh): it installs and starts Docker and builds the kops/kafka images"
REPO = Path(__file__).resolve().parents[2]
LABEL = "io.kops.cluster"
IMAGES = ("kops/kafka:3.9.2", "kops/kafka:4.4.0")
UP_TIMEOUT = "240"

# preset -> (Kafka version, ZooKeepers, dedicated controllers, brokers)
PRESETS = {
    "zk-single-kafka-single": ("3.9.2", 1, 0, 1),
    "zk-single-kafka-multiple": ("3.9.2", 1, 0, 3),
    "zk-multiple-kafka-single": ("3.9.2", 3, 0, 1),
    "zk-multiple-kafka-multiple": ("3.9.2", 3, 0, 3),
    "kraft-single": ("4.4.0", 0, 0, 1),
    "kraft-multiple": ("4.4.0", 0, 0, 3),
    "kraft-split": ("4.4.0", 0, 3, 3),
}
API_VERSIONS_CMD = {"3": "kafka.admin.BrokerApiVersionsCommand",
                    "4": "org.apache.kafka.tools.BrokerApiVersionsCommand"}



# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine(docker_client):
    """The pinged engine (conftest fails with the hint when there is none), with the images."""
    missing = []
    for ref in IMAGES:
        try:
            docker_client.images.get(ref)
        except Exception:  # noqa: BLE001 - ImageNotFound or an API error: the image is not usable
            missing.append(ref)
    if missing:
        pytest.fail(f"image(s) {', '.join(missing)} not on the Docker engine; {SETUP_HINT}", pytrace=False)
    if not Path(KOPS).is_file():
        pytest.fail(f"{KOPS} not found: kops is not installed in this venv; {SETUP_HINT}", pytrace=False)
    yield docker_client


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kops-state")


@pytest.fixture
def kops(state_dir):
    """Run the real CLI; returns the CompletedProcess (never raises on a non-zero exit)."""
    env = {**os.environ, "KOPS_STATE_DIR": str(state_dir), "NO_COLOR": "1"}

    def run(*args, timeout: float = 420) -> subprocess.CompletedProcess:
        return kopsrun.kops(*args, env=env, timeout=timeout)

    run.env = env
    return run


def _labelled(client, name: str) -> dict[str, list[str]]:
    flt = {"label": f"{LABEL}={name}"}
    return {"containers": sorted(c.name for c in client.containers.list(all=True, filters=flt)),
            "volumes": sorted(v.name for v in client.volumes.list(filters=flt)),
            "networks": sorted(n.name for n in client.networks.list(filters=flt))}


def _purge(client, kops, name: str) -> None:
    """`kops down --purge`, then whatever still carries the label (a crashed run's leftovers)."""
    down = kops("down", "--purge", "--name", name, timeout=300)
    remove_labelled(client, name)
    assert down.returncode == 0, f"kops down --purge --name {name} exited {down.returncode}\n{down.stderr}"


@pytest.fixture
def cluster(engine, kops):
    """``cluster(name)``: purge leftovers of NAME now, and purge it again after the test."""
    names: list[str] = []

    def use(name: str) -> str:
        _purge(engine, kops, name)
        names.append(name)
        return name

    yield use
    errors = []
    for name in reversed(names):
        try:
            _purge(engine, kops, name)
        except Exception as exc:  # noqa: BLE001 - purge every cluster, then report
            errors.append(f"{name}: {exc}")
    assert not errors, "purge after the test failed: " + "; ".join(errors)


# -- helpers --------------------------------------------------------------------------------

def _summary(stdout: str) -> dict[str, str]:
    """node -> action, from the node table that `--dry-run` prints before its numbered plan."""
    out = {}
    for line in stdout.splitlines():
        if not line.strip():
            break
        words = line.split()
        out[words[0]] = words[1]
    return out


def _steps(stdout: str) -> list[str]:
    """The numbered plan lines of `--dry-run`."""
    return [ln.strip() for ln in stdout.splitlines() if re.match(r"\s+\d+\. ", ln)]


def _write_inventory(tmp_path: Path, data: dict, name: str = "inventory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _preset_data(preset: str) -> dict:
    return yaml.safe_load((REPO / "inventories" / f"{preset}.yaml").read_text())


class Run:
    """A preset brought up under a name of its own, on free host ports."""

    def __init__(self, preset: str, kops):
        self.preset = preset
        self.name = f"kt-{preset}"[:26] + "-" + uuid.uuid4().hex[:4]
        self.up = ("--preset", preset, "--name", self.name, "--any-port", "--profile", "fast")
        self.src = ("--name", self.name)
        self.kops = kops
        self._status: dict | None = None

    def status(self) -> dict:
        self._status = json_of(self.kops("status", *self.src, "--output", "json"))
        return self._status

    @property
    def bootstrap(self) -> str:
        return (self._status or self.status())["bootstrap_servers"]

    def address(self, node: str, kind: str) -> str:
        st = self._status or self.status()
        return next(n["addresses"][kind] for n in st["nodes"] if n["name"] == node)


def _containers(client, name: str) -> dict:
    return {c.labels["io.kops.node"]: c
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
            if "io.kops.node" in c.labels}


def _started(client, name: str) -> dict[str, tuple[str, str]]:
    """node -> (container id, State.StartedAt)."""
    return {n: (c.id, c.attrs["State"]["StartedAt"]) for n, c in _containers(client, name).items()}


def _client_conf(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000,
            "log_level": 3}


def _create_topic(bootstrap: str, topic: str, rf: int, timeout: float = 60) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_client_conf(bootstrap))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=rf)],
                        operation_timeout=30)[topic].result(timeout=timeout)
    # the partition has a leader and its whole ISR before the test leans on it
    _wait_isr(bootstrap, topic, rf, timeout)


def _wait_isr(bootstrap: str, topic: str, want: int, timeout: float = 60) -> list[int]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(_client_conf(bootstrap))

    def in_sync():
        part = admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)
        assert part is not None, "no partition 0 yet"
        assert part.leader >= 0 and len(part.isrs) == want, \
            f"last (leader, replicas, isrs): {(part.leader, list(part.replicas), list(part.isrs))}"
        return list(part.isrs)

    return poll(in_sync, timeout=timeout, what=f"{topic}-0: {want} in-sync replicas",
                retry_on=(Exception,))   # a metadata error too: retried until the deadline


def _produce(bootstrap: str, topic: str, values: list[bytes], timeout: float = 60) -> None:
    from confluent_kafka import Producer

    prod = Producer({**_client_conf(bootstrap), "acks": "all", "enable.idempotence": True,
                     "linger.ms": 5, "message.timeout.ms": int(timeout * 1000)})
    ok, errors = [], []

    def report(err, msg):
        (errors if err else ok).append(err or msg.offset())

    for v in values:
        while True:
            try:
                prod.produce(topic, value=v, partition=0, on_delivery=report)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
    left = prod.flush(timeout)
    assert not errors, f"produce to {topic}: {len(errors)} failed, first: {errors[0]}"
    assert left == 0 and len(ok) == len(values), \
        f"produce to {topic}: {len(ok)}/{len(values)} acknowledged (acks=all), {left} still queued"


def _consume_all(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list[bytes]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    cons = Consumer({**_client_conf(bootstrap), "group.id": f"kops-test-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    got, last_err = [], None
    try:
        cons.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = cons.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                last_err = msg.error()
                continue
            got.append(msg.value())
    finally:
        cons.close()
    assert len(got) == count, (f"consumed {len(got)} of {count} messages from {topic} within "
                               f"{timeout:.0f} s (last error: {last_err})")
    return got


def _round_trip(bootstrap: str, rf: int, n: int = 10) -> str:
    topic = f"kops-test-{uuid.uuid4().hex[:8]}"
    _create_topic(bootstrap, topic, rf)
    values = [f"{topic} message {i}".encode() for i in range(n)]
    _produce(bootstrap, topic, values)
    assert _consume_all(bootstrap, topic, n) == values
    return topic


def _broker_config(bootstrap: str, broker_id: int, key: str) -> str:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(_client_conf(bootstrap))
    res = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
    configs = admin.describe_configs([res], request_timeout=20)[res].result(timeout=30)
    return configs[key].value


def _status(kops, *source) -> tuple[int, dict]:
    proc = kops("status", *source, "--output", "json")
    return proc.returncode, json_of(proc)


def _assert_healthy(kops, source: tuple, nbrokers: int, nnodes: int) -> dict:
    code, st = _status(kops, *source)
    assert code == 0 and st["state"] == "healthy", f"status exit {code}: {json.dumps(st, indent=1)}"
    assert st["problems"] == []
    assert len(st["nodes"]) == nnodes, [n["name"] for n in st["nodes"]]
    bad = [n["name"] for n in st["nodes"] if not n["healthy"] or n["state"] != "running"]
    assert not bad, f"unhealthy nodes {bad}: {json.dumps(st['nodes'], indent=1)}"
    assert len(st["kafka"]["brokers"]) == nbrokers == st["kafka"]["brokers_expected"], st["kafka"]
    assert st["kafka"]["controller"] is not None
    return st


def _run_client(client, cluster: str, image: str, argv: list[str], *, network: str | None = None,
                extra_hosts: dict | None = None, timeout: int = 120) -> tuple[int, str, list[str]]:
    """A throwaway container: (exit code, output, the networks it was on). Always removed.
    Labelled with the cluster, so a crashed run's purge removes it (and can drop the network)."""
    kw = {"network": network} if network else {}
    c = client.containers.create(image, argv, labels={LABEL: cluster, "io.kops.test": "client"},
                                 extra_hosts=extra_hosts or {}, **kw)
    try:
        c.start()
        code = c.wait(timeout=timeout)["StatusCode"]
        c.reload()
        nets = sorted(c.attrs["NetworkSettings"]["Networks"])
        return code, c.logs().decode(errors="replace"), nets
    finally:
        c.remove(force=True, v=True)


# -- the extra checks, each on the preset cluster that suits it ---------------------------

def check_network_clients(client, kops, run: Run) -> None:
    """Clients on the cluster network use kafka1:19092; other containers host.docker.internal:<docker port>."""
    preset, name = run.preset, run.name
    version = PRESETS[preset][0]
    image, main = f"kops/kafka:{version}", API_VERSIONS_CMD[version.split(".")[0]]
    net = client.networks.get(f"kops-{name}")
    assert net.attrs["Labels"].get(LABEL) == name, net.attrs["Labels"]
    tool = ["java", "-Xmx128m", "-cp", "/opt/kafka/libs/*", main, "--bootstrap-server"]

    code, out, nets = _run_client(client, name, image, [*tool, "kafka1:19092"], network=net.name)
    assert code == 0 and "kafka1:19092" in out, f"on {net.name}: exit {code}\n{out[-3000:]}"
    assert nets == [net.name]

    docker_addr = run.address("kafka1", "containers")
    assert docker_addr.startswith("host.docker.internal:"), docker_addr
    code, out, nets = _run_client(client, name, image, [*tool, docker_addr],
                                  extra_hosts={"host.docker.internal": "host-gateway"})
    assert net.name not in nets, nets
    assert code == 0 and docker_addr in out, f"from {nets} via {docker_addr}: exit {code}\n{out[-3000:]}"


def check_down_up_keeps_messages(client, kops, run: Run) -> None:
    """1000 messages survive down/up (on the same ports); down --purge then leaves nothing (twice: exit 0)."""
    src, name, bs = run.src, run.name, run.bootstrap
    topic = f"keep-{uuid.uuid4().hex[:8]}"
    _create_topic(bs, topic, 1)
    values = [f"{topic} {i:04d}".encode() for i in range(1000)]
    _produce(bs, topic, values)

    ok(kops("down", *src), "kops down")
    cs = _containers(client, name)
    assert {n: c.status for n, c in cs.items()} == {n: "exited" for n in cs}, "containers not stopped"
    vols = {v.name for v in client.volumes.list(filters={"label": f"{LABEL}={name}"})}
    assert vols == {f"{name}-{n}-data" for n in cs}, f"data volumes after down: {vols}"
    code, st = _status(kops, *src)
    assert code == 3 and st["state"] == "stopped", (code, st["state"])

    ok(kops("up", *run.up, "--timeout", UP_TIMEOUT), "kops up after down")
    assert run.status()["bootstrap_servers"] == bs, "the cluster's ports changed across down/up"
    assert _consume_all(bs, topic, 1000) == values

    mounted = {m["Name"] for c in _containers(client, name).values()
               for m in c.attrs.get("Mounts", []) if m.get("Type") == "volume"}
    ok(kops("down", *src, "--purge"), "kops down --purge")
    assert _labelled(client, name) == {"containers": [], "volumes": [], "networks": []}
    still = sorted(v for v in mounted if _volume_exists(client, v))
    assert not still, f"down --purge left volumes the cluster's containers used: {still}"
    ok(kops("down", *src, "--purge"), "a second kops down --purge")
    code, st = _status(kops, *src)
    assert code == 3 and st["state"] == "not-found", (code, st["state"])


def _volume_exists(client, name: str) -> bool:
    return any(v.name == name for v in client.volumes.list(filters={"name": name}))


def check_killed_broker_recovers(client, kops, run: Run, topic: str) -> None:
    """docker kill kafka2: status exit 1 naming it; `kops up` brings it back; healthy again."""
    preset, name, src = run.preset, run.name, run.src
    victim = client.containers.get(f"{name}-kafka2")
    victim.kill()
    victim.reload()
    assert victim.status == "exited", victim.status
    before = _started(client, name)

    proc = kops("status", *src)
    problems = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("problem:")]
    assert proc.returncode == 1, f"status exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert any("kafka2" in p for p in problems), f"no problem names kafka2:\n{proc.stdout}"

    ok(kops("up", *run.up, "--timeout", UP_TIMEOUT), "kops up after a kill")
    after = _started(client, name)
    assert after["kafka2"][0] == before["kafka2"][0], "kafka2 was recreated, not started"
    assert after["kafka2"][1] != before["kafka2"][1], "kafka2 was not started again"
    others = {n: v for n, v in after.items() if n != "kafka2"}
    assert others == {n: v for n, v in before.items() if n != "kafka2"}, "other nodes were restarted"
    nnodes = sum(PRESETS[preset][1:3]) + PRESETS[preset][3]
    _assert_healthy(kops, src, 3, nnodes)
    assert sorted(_wait_isr(run.bootstrap, topic, 3)) == [1, 2, 3]


def check_config_change_recreates_one_node(client, kops, run: Run, tmp_path: Path, topic: str) -> None:
    """nodes.kafka2.config changes: only kafka2 is recreated, on the same data volume."""
    preset, name, bs = run.preset, run.name, run.bootstrap
    data = _preset_data(preset)
    data["name"], data["ports"], data["profile"] = name, "auto", "fast"   # as `run.up` brought it up
    data["nodes"] = {"kafka2": {"config": {"log.retention.hours": 100}}}
    inv = _write_inventory(tmp_path, data)
    before = _started(client, name)
    # a marker in kafka2's data volume: the same volume (not a new one of that name) after
    # (a volume's CreatedAt is its root's ctime in Docker: it moves as Kafka writes there)
    marker = f"kops-test-{uuid.uuid4().hex}"
    res = client.containers.get(before["kafka2"][0]).exec_run(
        ["sh", "-c", f"echo {marker} > /var/lib/kafka/data/kops-test-marker"])
    assert res.exit_code == 0, res.output

    plan = ok(kops("up", "-i", inv, "--dry-run"), "kops up --dry-run (config change)").stdout
    assert _summary(plan) == {**{n: "unchanged" for n in before}, "kafka2": "reconfigure"}, plan
    steps = _steps(plan)
    # the min.insync guard, the one broker, the gate (kops.plan's live roll)
    assert steps[0].startswith("1. wait for no partition to depend on this node for min.insync.replicas (kafka2)"), plan
    # the keys that change, read from the node (kops.bundle.diff)
    assert steps[1] == ("2. reconfigure kafka2: rendered server.properties (log.retention.hours 168 -> 100) "
                        "changed; data kept"), plan
    assert steps[2].startswith("3. wait for Kafka to be ready") and "steady for 3 s" in steps[2], plan   # the fast profile: kops.plan.FAST_SETTLE
    assert len(steps) == 3, plan
    assert _started(client, name) == before, "--dry-run changed containers"

    ok(kops("up", "-i", inv, "--timeout", UP_TIMEOUT), "kops up (config change)")
    after = _started(client, name)
    assert set(after) == set(before)
    assert after["kafka2"][0] != before["kafka2"][0], "kafka2 was not recreated"
    for n in before:
        if n != "kafka2":
            assert after[n] == before[n], f"{n} was restarted or recreated: {before[n]} -> {after[n]}"
    k2 = client.containers.get(after["kafka2"][0])
    mounts = {m["Destination"]: m.get("Name") for m in k2.attrs["Mounts"]}
    assert mounts.get("/var/lib/kafka/data") == f"{name}-kafka2-data", mounts
    res = k2.exec_run(["cat", "/var/lib/kafka/data/kops-test-marker"])
    assert res.exit_code == 0 and res.output.decode().strip() == marker, \
        f"kafka2's data volume is not the one it had: {res.output!r}"
    # the change is live on kafka2 only, and kafka2 still has its replica of the old topic
    assert _broker_config(bs, 2, "log.retention.hours") == "100"
    assert _broker_config(bs, 1, "log.retention.hours") == "168"
    assert sorted(_wait_isr(bs, topic, 3)) == [1, 2, 3]
    _assert_healthy(kops, ("-i", inv), 3, 4)


# -- 1 (+2, 3, 4, 5, 7): every preset ---------------------------------------------------

@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_comes_up_ready_and_serves_clients(preset, cluster, engine, kops, tmp_path):
    version, nzk, nctl, nb = PRESETS[preset]
    nnodes = nzk + nctl + nb
    run = Run(preset, kops)
    name, src = cluster(run.name), run.src

    up = ok(kops("up", *run.up, "--timeout", UP_TIMEOUT), f"kops up {' '.join(run.up)}")
    st = _assert_healthy(kops, src, nb, nnodes)
    bs = st["bootstrap_servers"]
    assert bs in up.stdout and f"kops status --name {name}" in up.stdout, up.stdout
    ports = [int(a.rsplit(":", 1)[1]) for a in bs.split(",")]
    assert len(set(ports)) == nb and all(a.startswith("127.0.0.1:") for a in bs.split(",")), bs
    cs = _containers(engine, name)
    assert len(cs) == nnodes and all(c.labels["io.kops.kafka-version"] == version for c in cs.values())

    # a real client on the host; with three brokers: replication 3, acks=all, 3 in sync
    topic = _round_trip(bs, min(3, nb))
    if nb == 3:
        assert sorted(_wait_isr(bs, topic, 3)) == [1, 2, 3]

    # 4. a second `up` changes nothing; a dry run says so and changes nothing either
    before = _started(engine, name)
    again = ok(kops("up", *run.up, "--output", "json", "--timeout", UP_TIMEOUT), "second kops up")
    res = json_of(again)
    assert res["changed"] is False, res
    assert {a["action"] for a in res["actions"]} == {"unchanged"}, res["actions"]
    assert "nothing to change" in again.stderr, again.stderr
    assert res["status"]["state"] == "healthy", res["status"]
    assert res["status"]["bootstrap_servers"] == bs, "the ports picked at the first up must be kept"
    assert _started(engine, name) == before, "a second `kops up` restarted or recreated containers"
    dry = ok(kops("up", *run.up, "--dry-run"), "kops up --dry-run")
    summary = _summary(dry.stdout)
    assert sorted(summary) == sorted(before) and set(summary.values()) == {"unchanged"}, dry.stdout
    assert _steps(dry.stdout) == [], dry.stdout
    assert _started(engine, name) == before, "`kops up --dry-run` changed containers"

    if nb == 1 and nzk <= 1:             # zk-single-kafka-single, kraft-single
        check_network_clients(engine, kops, run)
        check_down_up_keeps_messages(engine, kops, run)
    elif preset == "zk-single-kafka-multiple":
        check_config_change_recreates_one_node(engine, kops, run, tmp_path, topic)
    elif preset in ("zk-multiple-kafka-multiple", "kraft-multiple"):
        check_killed_broker_recovers(engine, kops, run, topic)


# -- 4: dry run on a cluster that does not exist --------------------------------------------

def test_dry_run_on_a_new_cluster_creates_nothing(cluster, engine, kops, tmp_path, state_dir):
    name = cluster("dry-run-test")
    inv = _write_inventory(tmp_path, {
        "name": name, "profile": "fast", "kafka": {"version": "4.4.0", "mode": "kraft", "heap": "256m"},
        "brokers": {"nodes": 3, "external_port": 24092, "docker_port": 24192}})
    proc = ok(kops("up", "-i", inv, "--dry-run"), "kops up --dry-run")
    assert _summary(proc.stdout) == {"kafka1": "create", "kafka2": "create", "kafka3": "create"}, proc.stdout
    assert "nothing was changed" in proc.stderr
    proc = ok(kops("up", "-i", inv, "--dry-run", "--output", "json"), "kops up --dry-run --output json")
    res = json_of(proc)
    assert res["dry_run"] is True and res["changed"] is True and res["status"] is None, res
    # the plan as data: the network first, storage formatted before the nodes start, the gate last
    kinds = [[a["kind"] for a in step] for step in res["plan"]]
    assert kinds == [["prepare"], ["format"] * 3, ["create"] * 3, ["wait"]], kinds
    assert res["plan"][0][0]["needs"] == [f"network kops-{name}"], res["plan"][0]
    assert res["plan"][-1][0]["gate"] == "kafka-ready"
    assert _labelled(engine, name) == {"containers": [], "volumes": [], "networks": []}
    assert not (state_dir / "clusters" / name).exists(), "a dry run kept a cluster id"


# -- 6: port clash, and two clusters side by side ------------------------------------------

@pytest.mark.parametrize("held,node", [(19392, "kafka1"), (19492, "kafka1"), (19592, "zoo1")],
                         ids=["external", "docker", "zookeeper"])
def test_port_clash_is_refused_and_creates_nothing(held, node, cluster, engine, kops, tmp_path):
    name = cluster("clash-test")
    inv = _write_inventory(tmp_path, {
        "name": name, "profile": "fast", "kafka": {"version": "3.9.2", "heap": "256m"},
        "zookeeper": {"nodes": 1, "client_port": 19592},
        "brokers": {"nodes": 1, "external_port": 19392, "docker_port": 19492}})
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", held))
        s.listen()
        proc = kops("up", "-i", inv, "--timeout", "60")
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert str(held) in proc.stderr and node in proc.stderr, proc.stderr
    assert "nothing was created" in proc.stderr, proc.stderr
    assert _labelled(engine, name) == {"containers": [], "volumes": [], "networks": []}


def test_two_clusters_side_by_side(cluster, engine, kops, tmp_path):
    """The same preset twice, `--name auto --any-port`: two clusters, each ready on the
    free ports it reports, each reachable there (CI jobs on one runner, tests beside a
    user's cluster)."""
    runs = []
    for _ in range(2):
        up = ok(kops("up", "--preset", "kraft-single", "--name", "auto", "--any-port", "--output", "json",
                      "--timeout", UP_TIMEOUT), "kops up --name auto --any-port")
        st = json_of(up)["status"]
        runs.append(st)
    names = [st["cluster"] for st in runs]
    try:
        assert len(set(names)) == 2 and all(n.startswith("kraft-single-") for n in names), names
        assert runs[0]["bootstrap_servers"] != runs[1]["bootstrap_servers"]
        for st in runs:
            assert st["state"] == "healthy"
            _round_trip(st["bootstrap_servers"], 1)
        rows = {r["cluster"]: r for r in json_of(ok(kops("ls", "--output", "json"), "kops ls"))}
        for st in runs:
            row = rows[st["cluster"]]
            assert row["nodes"] == row["running"] == 1 and row["bootstrap_servers"] == st["bootstrap_servers"], rows
        assert engine.networks.get(f"kops-{names[0]}").id != engine.networks.get(f"kops-{names[1]}").id
        # `kops env`, evaluated in a shell, gives a client what it needs
        script = (f'eval "$({KOPS} env --name {names[1]})" && {sys.executable} -c "import os; '
                  'from confluent_kafka.admin import AdminClient; '
                  "print(AdminClient({'bootstrap.servers': os.environ['KAFKA_BOOTSTRAP_SERVERS']})"
                  '.list_topics(timeout=20).brokers)"')
        proc = subprocess.run(["bash", "-c", script], env=kops.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and runs[1]["bootstrap_servers"] in proc.stdout, proc.stdout + proc.stderr
    finally:
        for n in names:
            _purge(engine, kops, n)


# -- 8: a broker that cannot start ----------------------------------------------------------

@pytest.mark.parametrize("mode", ["kraft", "zookeeper"])
def test_broken_broker_property_is_reported_with_its_log(mode, cluster, engine, kops, tmp_path):
    name = cluster(f"broken-{mode[:2]}")
    data = {"name": name, "profile": "fast", "kafka": {"version": "4.4.0" if mode == "kraft" else "3.9.2", "mode": mode,
                                    "heap": "256m"},
            "brokers": {"nodes": 1, "external_port": 23092, "docker_port": 23192},
            # right by type (the config check lets it through), refused by the broker at start
            "nodes": {"kafka1": {"config": {"replica.fetch.wait.max.ms": 40000}}}}
    if mode == "zookeeper":
        data["zookeeper"] = {"nodes": 1, "client_port": 23281}
    inv = _write_inventory(tmp_path, data)
    t0 = time.monotonic()
    proc = kops("up", "-i", inv, "--timeout", "90")
    took = time.monotonic() - t0
    assert proc.returncode == 1, f"exit {proc.returncode} (1: failed fast)\n{proc.stdout}\n{proc.stderr}"
    assert took < 85, f"took {took:.0f} s: it waited for the timeout instead of failing fast"
    err = proc.stderr
    assert "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms" in err, \
        f"no log lines in the error:\n{err}"
    assert _volume_exists(engine, f"{name}-kafka1-data"), "the data volume was removed"
    if mode == "kraft":
        # the storage format parses the config: the node is refused before its container exists
        assert "kafka1: formatting KRaft storage failed" in err, err
        assert not engine.containers.list(all=True, filters={"label": "io.kops.node=kafka1",
                                                             "name": f"{name}-kafka1"}), "a container was left"
    else:
        assert "kafka1" in err and "exited" in err, err
        c = engine.containers.get(f"{name}-kafka1")
        assert c.status == "exited", c.status
