"""A daily user's walk through one cluster (issue 21), on a real cluster (Docker engine, real
Kafka): one KRaft node made with `kops up --preset kraft-single --name walk-a-... --any-port
--profile fast`, shared by the tests of this module (in this order):

* `kops up` prints the `kops shell` line and the `docker exec -it <cluster>-<node> bash` one;
  `kops status --wide` shows the container;
* `$KOPS_CLUSTER` is the default of --name (status, logs, env, exec, restart, client-config);
* the host ports and the profile stick to the cluster: `kops down --name X`, then the hint
  followed literally (`kops up --name X`, no --any-port, no --profile) starts the same
  container on the same ports; the preset's fixed ports move it only with --move-ports,
  which --dry-run lists;
* `upgrade` needs no --any-port;
* inside the node, `localhost:9092` gets a note naming $KAFKA_BOOTSTRAP_SERVERS, which works;
* `kops env -i FILE` of a cluster not up says so (stable, no invented port);
* `kops down --purge` forgets the kept ports and profile; a second purge says nothing was there.

The cluster has a name of its own and free ports, beside whatever else runs on the engine.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

import kopsrun
from kopsrun import json_of, ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LABEL = "io.kops.cluster"
NAME = f"walk-a-{uuid.uuid4().hex[:6]}"


def kops(env, *args, timeout=420, cwd=None):
    return kopsrun.kops(*args, env=env, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if k != "KOPS_CLUSTER"}
    return {**e, "KOPS_STATE_DIR": str(tmp_path_factory.mktemp("walk-state")), "NO_COLOR": "1",
            "COLUMNS": "160"}


@pytest.fixture(scope="module")
def walk(env, own_clusters_module):
    """The module's cluster: (the `up` run, its bootstrap servers)."""
    own_clusters_module(NAME)
    up = ok(kops(env, "up", "--preset", "kraft-single", "--name", NAME, "--any-port", "--profile", "fast"))
    port = re.search(r"bootstrap servers:\s+127\.0\.0\.1:(\d+)", up.stdout)
    assert port and port.group(1) != "9092", up.stdout
    yield up, f"127.0.0.1:{port.group(1)}"
    kops(env, "down", "--name", NAME, "--purge")


def containers(docker_client, name: str = NAME) -> dict:
    return {c.labels["io.kops.node"]: c
            for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
            if "io.kops.node" in c.labels}


def test_up_prints_the_shell_and_docker_exec_lines(walk):
    up, _ = walk
    assert f"kops shell kafka1 --name {NAME}" in up.stdout, up.stdout
    assert f"docker exec -it {NAME}-kafka1 bash" in up.stdout, up.stdout
    assert f"kops down --name {NAME}" in up.stdout


def test_status_wide_shows_the_container(walk, env, docker_client):
    p = ok(kops(env, "status", "--name", NAME, "--wide"))
    assert "CONTAINER" in p.stdout and f"{NAME}-kafka1" in p.stdout, p.stdout
    assert containers(docker_client)["kafka1"].name == f"{NAME}-kafka1"


def test_kops_cluster_is_the_default_of_name(walk, env, tmp_path):
    _, bootstrap = walk
    named = {**env, "KOPS_CLUSTER": NAME}
    st = json_of(ok(kops(named, "status", "--output", "json")))
    assert st["cluster"] == NAME and st["bootstrap_servers"] == bootstrap, st
    assert ok(kops(named, "logs", "kafka1", "--tail", "3")).stdout.strip()
    values = json_of(ok(kops(named, "env", "--output", "json")))
    assert values == {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KOPS_CLUSTER": NAME}, values
    plan = ok(kops(named, "restart", "--dry-run"))
    assert f"plan (kops restart --name {NAME})" in plan.stdout and "restart kafka1" in plan.stdout, plan.stdout
    # client-config takes the cluster too (--name, or $KOPS_CLUSTER): this one is plaintext
    for e, args in ((named, ()), (env, ("--name", NAME))):
        p = kops(e, "client-config", *args, "-o", tmp_path / "client")
        assert p.returncode == 2 and f"cluster {NAME} has no security section" in p.stderr, p.stderr
    # a bad value is bad input, said as such
    p = kops({**env, "KOPS_CLUSTER": "Not A Name"}, "status")
    assert p.returncode == 2 and "KOPS_CLUSTER='Not A Name' is not a cluster name" in p.stderr, p.stderr


def test_exec_localhost_gets_a_note_and_the_bootstrap_variable_works(walk, env):
    p = ok(kops(env, "exec", "kafka1", "--name", NAME, "-T", "--", "echo", "--bootstrap-server", "localhost:9092"))
    assert "localhost:9092 is not a listener inside kafka1" in p.stderr, p.stderr
    assert "$KAFKA_BOOTSTRAP_SERVERS (kafka1:19092)" in p.stderr, p.stderr
    p = ok(kops({**env, "KOPS_CLUSTER": NAME}, "exec", "kafka1", "-T", "--", "sh", "-c",
                'kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --list', timeout=180))
    assert "__consumer_offsets" in p.stdout and "is not a listener" not in p.stderr, p.stderr


def test_ports_and_profile_stick_through_down_and_up(walk, env, docker_client, tmp_path):
    _, bootstrap = walk
    before = containers(docker_client)["kafka1"].id
    down = ok(kops(env, "down", "--name", NAME))
    hint = re.search(r"`(kops up[^`]*)` starts it again", down.stderr)
    assert hint and hint.group(1) == f"kops up --name {NAME}", down.stderr
    # the preset's fixed ports (9092) are not taken: the kept ones are, and a note says so
    dry = ok(kops(env, "up", "--name", NAME, "--dry-run"))
    assert "start kafka1" in dry.stdout and "reconfigure" not in dry.stdout, dry.stdout
    assert f"cluster {NAME} keeps its host ports (kafka1 {bootstrap.rsplit(':', 1)[1]})" in dry.stderr, dry.stderr
    assert f"cluster {NAME} keeps the fast profile" in dry.stderr, dry.stderr
    # --move-ports is what moves them, and --dry-run names each port that moves (to free fixed
    # ports of an inventory naming this cluster: 9092 may be a user's own cluster's)
    from cleanup import free_base

    base = free_base([0, 1])
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(f"name: {NAME}\nkafka: {{version: 4.4.0, mode: kraft}}\n"
                     f"brokers: {{nodes: 1, external_port: {base}, docker_port: {base + 1}}}\n")
    moving = ok(kops(env, "up", "-i", fixed, "--move-ports", "--dry-run"))
    assert f"kafka1 external: {bootstrap.rsplit(':', 1)[1]} -> {base}" in moving.stdout, moving.stdout
    assert "reconfigure kafka1" in moving.stdout, moving.stdout
    # an inventory file naming the same cluster (the preset's fixed ports) uses them too
    ok(kops(env, "init", "--preset", "kraft-single", "--name", NAME, "-o", tmp_path / "same.yaml"))
    same = ok(kops(env, "up", "-i", tmp_path / "same.yaml", "--dry-run"))
    assert "start kafka1" in same.stdout and "reconfigure" not in same.stdout, same.stdout
    assert f"cluster {NAME} keeps its host ports" in same.stderr, same.stderr
    # followed literally, the hint brings back the same container on the same ports, fast
    again = ok(kops(env, *hint.group(1).split()[1:]))
    assert f"bootstrap servers:  {bootstrap}" in again.stdout, again.stdout
    c = containers(docker_client)["kafka1"]
    assert c.id == before and c.status == "running"
    st = json_of(ok(kops(env, "status", "--name", NAME, "--output", "json")))
    assert st["state"] == "healthy" and st["bootstrap_servers"] == bootstrap, st


def test_upgrade_needs_no_any_port(walk, env, docker_client):
    _, bootstrap = walk
    before = containers(docker_client)["kafka1"].id
    for extra in ((), ("--any-port",)):   # still accepted, not needed
        p = ok(kops(env, "upgrade", "--name", NAME, "--to", "4.4.0", "--dry-run", *extra))
        assert "nothing to roll" in p.stdout, p.stdout
        assert "reconfigure" not in p.stdout
    assert containers(docker_client)["kafka1"].id == before


def test_env_of_a_cluster_not_up_invents_no_port(env, tmp_path):
    new = f"walk-a-{uuid.uuid4().hex[:6]}"
    init = ok(kops(env, "init", "--preset", "kraft-single", "--any-port", "-o", f"{new}.yaml", cwd=tmp_path))
    text = (tmp_path / f"{new}.yaml").read_text()
    assert "ports: auto" in text and "127.0.0.1:9092" not in text, text
    assert "picked free by the first `kops up`" in text, init.stderr
    answers = [kops(env, "env", "-i", tmp_path / f"{new}.yaml") for _ in range(2)]
    for p in answers:
        assert p.returncode == 3 and p.stdout == "", (p.stdout, p.stderr)
        assert f"cluster {new} not found; `kops up -i " in p.stderr, p.stderr
    assert answers[0].stderr == answers[1].stderr


def test_drift_is_exit_5_naming_what_differs(walk, env, docker_client):
    """`up --dry-run --exit-code`: 0 when the cluster matches, 5 (the plan printed) when a
    file was edited on the node behind kops's back; `up` puts it back, and it is 0 again."""
    clean = kops(env, "up", "--name", NAME, "--dry-run", "--exit-code")
    assert clean.returncode == 0 and "no drift" in clean.stderr, (clean.returncode, clean.stdout, clean.stderr)
    c = containers(docker_client)["kafka1"]
    code, out = c.exec_run(["sh", "-c", "echo log.retention.hours=1 >> /etc/kafka/server.properties"], user="root")
    assert code == 0, out
    drift = kops(env, "up", "--name", NAME, "--dry-run", "--exit-code")
    assert drift.returncode == 5, (drift.returncode, drift.stdout, drift.stderr)
    assert "server.properties (log.retention.hours 168 -> " in drift.stdout or \
        "server.properties (+log.retention.hours" in drift.stdout or \
        "server.properties (log.retention.hours" in drift.stdout, drift.stdout
    js = kops(env, "up", "--name", NAME, "--dry-run", "--exit-code", "--output", "json")
    assert js.returncode == 5 and json_of_any(js)["changed"] is True
    assert f"`kops up --name {NAME} --refresh` applies the plan above" in drift.stderr, drift.stderr
    ok(kops(env, "up", "--name", NAME, "--refresh"))
    again = kops(env, "up", "--name", NAME, "--dry-run", "--exit-code")
    assert again.returncode == 0, (again.stdout, again.stderr)
    wrong = kops(env, "up", "--name", NAME, "--exit-code")
    assert wrong.returncode == 2 and "--exit-code goes with --dry-run" in wrong.stderr


def json_of_any(p):
    import json

    return json.loads(p.stdout)


def test_purge_forgets_and_a_second_purge_says_nothing_was_there(walk, env):
    p = ok(kops(env, "down", "--name", NAME, "--purge"))
    assert f"cluster {NAME} purged (1 nodes): containers, volumes and network removed" in p.stdout, p.stdout
    again = ok(kops(env, "down", "--name", NAME, "--purge"))
    assert "purged" not in again.stdout and f"cluster {NAME}: nothing to purge" in again.stdout, again.stdout
    # forgotten: no kept ports, profile or inventory (the next `up --name` starts afresh)
    from pathlib import Path

    assert not (Path(env["KOPS_STATE_DIR"]) / "clusters" / NAME).exists()


def test_an_interrupted_first_up_is_listed_and_purged(env, docker_client, own_clusters):
    """Ctrl-C in a first `up` after the network and a volume were made, before any container:
    `status` and `ls` say what remains (not "not found"), and `down --purge` removes it."""
    name = own_clusters(f"walk-i-{uuid.uuid4().hex[:6]}")
    docker_client.volumes.create(f"{name}-kafka1-data", labels={LABEL: name, "io.kops.node": "kafka1"})
    docker_client.networks.create(f"kops-{name}", labels={LABEL: name})
    st = kops(env, "status", "--name", name)
    assert st.returncode == 3, st
    assert f"volume {name}-kafka1-data, network kops-{name} remain" in st.stderr, st.stderr
    assert f"`kops down --name {name} --purge` removes them" in st.stderr, st.stderr
    js = json_of(kops(env, "status", "--name", name, "--output", "json"))
    assert js["state"] == "not-found" and len(js["remains"]) == 2, js
    row = next(r for r in json_of(ok(kops(env, "ls", "--output", "json"))) if r["cluster"] == name)
    assert row["nodes"] == 0 and row["remains"], row
    ok(kops(env, "down", "--name", name, "--purge"))
    assert not docker_client.volumes.list(filters={"label": f"{LABEL}={name}"})
    assert not docker_client.networks.list(filters={"label": f"{LABEL}={name}"})
    assert not [r for r in json_of(ok(kops(env, "ls", "--output", "json"))) if r["cluster"] == name]
