"""The compose bundle runs a real Kafka: `kops render`, `docker-compose up -d`, then a real
client produces and consumes through the EXTERNAL listener on the host, and a client
container on the cluster network reaches kafka1:19092. Each preset is rendered under a
name and on free host ports of its own, so a user's cluster can keep running beside it.

Needs a Docker engine, Debian's docker-compose (v1) and the kops/kafka images: `make test`
(scripts/setup.sh) provides all three. Nothing is skipped: a missing piece fails with the hint.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from kopsrun import kops, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SETUP_HINT = "run `make test` (or scripts/setup.sh) first"
REPO = Path(__file__).resolve().parents[2]
READY_DEADLINE = 120.0   # seconds from `up -d` until a message round-trips
LABEL_CLUSTER = "io.kops.cluster"
LOG = logging.getLogger("kops.test.compose")
PROJECT_PREFIX = "kopstest"
PROJECT_LABEL = "com.docker.compose.project"

# preset -> (Kafka version, the BrokerApiVersionsCommand main class of that version)
PRESETS = {
    "zk-single-kafka-single": ("3.9.2", "kafka.admin.BrokerApiVersionsCommand"),
    "kraft-single": ("4.4.0", "org.apache.kafka.tools.BrokerApiVersionsCommand"),
}


def _compose_bin() -> str:
    path = shutil.which("docker-compose") or ("/usr/bin/docker-compose"
                                              if os.access("/usr/bin/docker-compose", os.X_OK) else None)
    if not path:
        pytest.fail(f"docker-compose is not installed; {SETUP_HINT} "
                    "(it runs `apt-get install docker-compose`)", pytrace=False)
    return path


def _run(cmd: list, *, cwd=None, env=None, timeout=180, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}", pytrace=False)
    return proc


def _is_ours(labels: dict | None, project: str | None = None) -> bool:
    """Made by this test: compose projects named ``kopstest*`` (or exactly ``project``)."""
    got = (labels or {}).get(PROJECT_LABEL, "")
    return got == project if project else got.startswith(PROJECT_PREFIX)


def _clear_leftovers(client, cluster: str, volume_names: list[str], project: str | None = None,
                     strict: bool = True) -> None:
    """Remove what an earlier run of this test left (same container and volume names);
    fail, touching nothing, when the names belong to something else, e.g. a `kops up`
    cluster of the same name that may be in use."""
    flt = {"label": f"{LABEL_CLUSTER}={cluster}"}
    foreign = []
    for c in client.containers.list(all=True, filters=flt):
        if _is_ours(c.labels, project):
            LOG.warning("removing leftover container %s", c.name)
            c.remove(force=True, v=True)
        else:
            foreign.append(f"container {c.name}")
    vols = {v.name: v for v in client.volumes.list(filters=flt)}
    for name in volume_names:
        if name not in vols and _volume_exists(client, name):
            vols[name] = client.volumes.get(name)
    for name, v in vols.items():
        if _is_ours(v.attrs.get("Labels"), project):
            LOG.warning("removing leftover volume %s", name)
            v.remove(force=True)
        else:
            foreign.append(f"volume {name}")
    for net in client.networks.list(filters={"label": PROJECT_LABEL}):
        if _is_ours(net.attrs.get("Labels"), project):
            net.reload()  # list() leaves Containers out
            if not net.attrs.get("Containers"):
                LOG.warning("removing leftover network %s", net.name)
                net.remove()
    if foreign and strict:
        pytest.fail(f"cluster {cluster!r} already exists outside this test ({', '.join(foreign)}); it may "
                    f"be in use, so it is left alone: remove it (`kops down --preset {cluster}` or "
                    "`docker rm -f` / `docker volume rm`) and rerun.", pytrace=False)


def _volume_exists(client, name: str) -> bool:
    return any(v.name == name for v in client.volumes.list(filters={"name": name}))


def _port_free(port: int) -> bool:
    """Nothing listens on the port. SO_REUSEADDR, as Docker's proxy uses: connections of a
    cluster just removed linger in TIME_WAIT on the port and must not count as in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _port_holders(client, ports: list[int]) -> str:
    """Who holds the ports, for the failure message: the containers publishing them, if any."""
    names = []
    for c in client.containers.list():
        for bindings in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
            if any(int(b.get("HostPort") or 0) in ports for b in bindings or []):
                names.append(c.name)
                break
    return f" (by container {', '.join(names)})" if names else " (not by a container)"


def _published_ports(compose: dict) -> list[int]:
    return sorted(int(p.split(":")[-2]) for svc in compose["services"].values() for p in svc.get("ports", []))


def _roundtrip(bootstrap: str, topic: str, payload: bytes, deadline: float) -> tuple[bytes, float]:
    """Create the topic, produce one message and consume it back; retried until deadline."""
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    base = {"bootstrap.servers": bootstrap, "logger": LOG, "socket.connection.setup.timeout.ms": 3000}
    admin = AdminClient(dict(base))
    last: Exception | str = "never tried"
    start = time.monotonic()
    # 1. the broker answers metadata requests and has registered itself
    while True:
        if time.monotonic() > deadline:
            raise AssertionError(f"no broker answered on {bootstrap} within the deadline: {last}")
        try:
            md = admin.list_topics(timeout=3)
            if md.brokers:
                break
            last = "metadata without brokers"
        except KafkaException as exc:
            last = exc
        time.sleep(0.5)
    LOG.info("broker metadata after %.1f s: %s", time.monotonic() - start, md.brokers)
    # 2. a new topic
    while True:
        fut = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
        try:
            fut.result(timeout=10)
            break
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"could not create topic {topic}: {exc}") from exc
            last = exc
            time.sleep(0.5)
    # 3. produce, with the delivery report checked
    producer = Producer({**base, "acks": "all", "enable.idempotence": True})
    delivered: list = []
    while not delivered:
        errors: list = []
        producer.produce(topic, value=payload, key=b"k",
                         on_delivery=lambda err, msg: (errors if err else delivered).append(err or msg))
        producer.flush(max(1.0, deadline - time.monotonic()))
        if errors and time.monotonic() > deadline:
            raise AssertionError(f"produce to {topic} failed: {errors[-1]}")
        if not delivered:
            if time.monotonic() > deadline:
                raise AssertionError(f"produce to {topic}: no delivery report before the deadline")
            time.sleep(0.5)
    assert delivered[0].offset() == 0
    # 4. consume it back through a consumer group
    consumer = Consumer({**base, "group.id": f"kops-test-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                last = msg.error()
                continue
            consumer.commit(message=msg, asynchronous=False)
            return msg.value(), time.monotonic()
        raise AssertionError(f"nothing consumed from {topic} before the deadline (last: {last})")
    finally:
        consumer.close()


@pytest.fixture(params=list(PRESETS), ids=list(PRESETS))
def compose_cluster(request, docker_client, tmp_path):
    """Render the preset with `kops render`, `docker-compose up -d`; always `down -v` after."""
    preset = request.param
    version, _ = PRESETS[preset]
    compose = _compose_bin()
    image = f"kops/kafka:{version}"
    if not docker_client.images.list(name=image):
        pytest.fail(f"image {image} is missing; {SETUP_HINT} (it builds the kops/kafka images)",
                    pytrace=False)

    out = tmp_path / "bundle"
    env = {**os.environ, "KOPS_STATE_DIR": str(tmp_path / "state")}
    # the preset under a name and on host ports of its own: a user's cluster of that preset
    # (container names, ports 9092...) may be running, and must stay untouched
    data = yaml.safe_load((REPO / "inventories" / f"{preset}.yaml").read_text())
    ext, dock, zkp = _free_ports(3)
    data["name"] = f"kopsc-{uuid.uuid4().hex[:6]}"
    data["brokers"] = {**data.get("brokers", {}), "external_port": ext, "docker_port": dock}
    if data.get("zookeeper"):
        data["zookeeper"]["client_port"] = zkp
    inv = tmp_path / "inventory.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    ok(kops("render", "-i", inv, "-o", out, env=env, timeout=60))
    spec = yaml.safe_load((out / "docker-compose.yml").read_text())
    cluster = next(iter(spec["services"].values()))["labels"][LABEL_CLUSTER]

    volume_names = sorted(spec["volumes"])
    _clear_leftovers(docker_client, cluster, volume_names)
    # a just-removed container (or a neighbour's short test cluster) may hold them a moment
    grace = time.monotonic() + 30
    while (busy := [p for p in _published_ports(spec) if not _port_free(p)]) and time.monotonic() < grace:
        time.sleep(0.5)
    if busy:
        holders = _port_holders(docker_client, busy)
        pytest.fail(f"host port(s) {busy} are in use{holders}; {preset} publishes "
                    f"{_published_ports(spec)}. Stop whatever holds them (`docker ps`, `ss -ltnp`) "
                    "and rerun.", pytrace=False)

    project = f"{PROJECT_PREFIX}{uuid.uuid4().hex[:8]}"
    dc = [compose, "--ansi", "never", "-p", project]
    try:
        t0 = time.monotonic()
        up = _run([*dc, "up", "-d"], cwd=out, check=False, timeout=180)
        LOG.info("docker-compose up -d took %.1f s", time.monotonic() - t0)
        yield {"preset": preset, "dir": out, "project": project, "compose": dc, "spec": spec,
               "version": version, "cluster": cluster, "up": up, "t0": t0, "bootstrap": f"127.0.0.1:{ext}"}
    finally:
        # anonymous volumes (the image declares VOLUMEs for both data paths) must go too
        anon = {m["Name"] for x in docker_client.containers.list(
                    all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
                for m in x.attrs.get("Mounts", []) if m.get("Type") == "volume"
                and not m["Name"].startswith(f"{cluster}-")}
        down = _run([*dc, "down", "-v", "--remove-orphans", "--timeout", "30"], cwd=out, check=False,
                    timeout=240)
        if down.returncode != 0:
            print(f"docker-compose down failed:\n{down.stdout}\n{down.stderr}", file=sys.stderr)
        _clear_leftovers(docker_client, cluster, volume_names, project, strict=False)
        for x in docker_client.containers.list(all=True, filters={"label": f"io.kops.test={project}"}):
            x.remove(force=True, v=True)  # the client container, if a failure left it
        leaked = [v for v in anon if _volume_exists(docker_client, v)]
        for v in leaked:
            docker_client.volumes.get(v).remove(force=True)
        assert not leaked, f"`docker-compose down -v` left anonymous volumes behind: {leaked}"


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for sk in socks:
            sk.bind(("0.0.0.0", 0))
        return [sk.getsockname()[1] for sk in socks]
    finally:
        for sk in socks:
            sk.close()


def _compose_logs(c) -> str:
    proc = _run([*c["compose"], "logs", "--tail", "50"], cwd=c["dir"], check=False, timeout=60)
    return proc.stdout + proc.stderr


def test_compose_bundle_serves_kafka(compose_cluster, docker_client):
    c = compose_cluster
    try:
        up = c["up"]
        assert up.returncode == 0, f"docker-compose up -d exited {up.returncode}\n{up.stdout}\n{up.stderr}"
        services = sorted(c["spec"]["services"])

        # every container of the bundle runs, with the labels the drivers rely on
        conts = docker_client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={c['project']}"})
        assert {x.labels[LABEL_CLUSTER] for x in conts} == {c["cluster"]}
        assert sorted(x.labels["io.kops.node"] for x in conts) == services

        # a real client on the host: produce through the EXTERNAL address and consume it back
        topic = f"kops-test-{uuid.uuid4().hex[:10]}"
        payload = f"hello from {c['preset']} {uuid.uuid4()}".encode()
        got, when = _roundtrip(c["bootstrap"], topic, payload, deadline=c["t0"] + READY_DEADLINE)
        assert got == payload
        print(f"{c['preset']}: message produced and consumed {when - c['t0']:.1f} s after `up -d` began")

        # a client on the cluster network reaches the INTERNAL listener by the node's name
        _, api_cls = PRESETS[c["preset"]]
        net = f"{c['project']}_default"
        tool = docker_client.containers.run(
            f"kops/kafka:{c['version']}",
            ["java", "-Xmx128m", "-cp", "/opt/kafka/libs/*", api_cls, "--bootstrap-server", "kafka1:19092"],
            network=net, detach=True, labels={"io.kops.test": c["project"]},
            name=f"{c['project']}-apiversions")
        try:
            rc = tool.wait(timeout=90)["StatusCode"]
            output = tool.logs(stdout=True, stderr=True).decode(errors="replace")
        finally:
            tool.remove(force=True)
        assert rc == 0, f"BrokerApiVersionsCommand exited {rc}:\n{output}"
        assert "kafka1:19092" in output, output
        assert "Produce(0):" in output, output

        # every service ends healthy (the compose healthchecks work on this image)
        for x in conts:
            def healthy(x=x):
                x.reload()
                health = x.attrs["State"].get("Health", {})
                assert health.get("Status") == "healthy", (x.name, health)
                return True
            poll(healthy, timeout=30, what=f"{x.name} healthy")
            assert x.attrs["State"]["Running"], x.name
    except BaseException:
        print(f"---- docker-compose logs --tail 50 ({c['project']})\n{_compose_logs(c)}")
        raise
