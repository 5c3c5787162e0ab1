"""`kops topic|produce|consume|group`, inventory topics at `up`, and `kops env --write`, on
one real cluster shared by the module: Kafka 4.4.0 (KRaft), TLS + SCRAM-SHA-512, with
auto.create.topics.enable=false. Every command goes through the real CLI (subprocess) and
the cluster's security settings without being told them: the secure path is the only path.

The cluster has a name and ports of its own (ports: auto) and a state folder in tmp, so
the module runs beside a user's cluster; its containers are removed by label at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

import kopsrun
from cleanup import remove_labelled
from kopsrun import KOPS, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LABEL = "io.kops.cluster"


def inventory(path: Path, name: str, topics: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "name": name, "profile": "fast", "kafka": {"version": "4.4.0", "heap": "256m"},
        "brokers": {"nodes": 1, "config": {"auto.create.topics.enable": False}},
        "ports": "auto", "security": {"tls": True, "sasl": "scram-sha-512"}, "topics": topics}, sort_keys=False))
    return path


TOPICS = {"inv-a": {"partitions": 3, "config": {"retention.ms": 86400000}},
          "inv-b": {"partitions": 1, "config": {"cleanup.policy": "compact"}}}


class Cluster:
    def __init__(self, tmp: Path, name: str):
        self.tmp, self.name = tmp, name
        self.env = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "120"}
        self.inv = inventory(tmp / "data.yaml", name, TOPICS)
        self.first_up: dict = {}
        self.first_up_seconds = 0.0

    def kops(self, *args, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """`up` and `down` as a user runs them (a process of their own); the data commands
        in-process through click's runner (the same CLI, without a Python start each time)."""
        argv = [str(a) for a in args]
        if argv[0] in ("up", "down"):
            return kopsrun.kops(*argv, env=self.env, input=input, timeout=timeout)
        from click.testing import CliRunner

        from kops.cli.main import cli

        r = CliRunner(env={k: self.env[k] for k in ("KOPS_STATE_DIR", "NO_COLOR", "COLUMNS")}).invoke(
            cli, argv, input=input if input is not None else "", catch_exceptions=False)
        return subprocess.CompletedProcess(["kops", *argv], r.exit_code, r.stdout, r.stderr)

    def ok(self, *args, **kw) -> subprocess.CompletedProcess:
        return ok(self.kops(*args, **kw))

    def on(self, *args, **kw):
        """A data command on this cluster, by name."""
        return self.kops(*args, "--name", self.name, **kw)

    def describe(self, topic: str) -> dict:
        return json.loads(self.ok("topic", "describe", topic, "--name", self.name, "--output", "json").stdout)

    def started(self, client) -> dict[str, str]:
        return {c.name: c.attrs["State"]["StartedAt"]
                for c in client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"})}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client):
    name = f"t11data-{uuid.uuid4().hex[:6]}"
    remove_labelled(docker_client, name)
    c = Cluster(tmp_path_factory.mktemp("t11data"), name)
    t0 = time.monotonic()
    p = c.ok("up", "-i", c.inv, "--output", "json", "--timeout", "300")
    c.first_up_seconds = time.monotonic() - t0
    c.first_up = json.loads(p.stdout)
    yield c
    c.kops("down", "-i", c.inv, "--purge")
    remove_labelled(docker_client, name)


# -- inventory topics ------------------------------------------------------------------------------

def test_inventory_topics_are_created_at_up(cluster):
    assert {t["topic"]: t["action"] for t in cluster.first_up["topics"]} == {"inv-a": "create", "inv-b": "create"}
    a = cluster.describe("inv-a")
    assert len(a["partitions"]) == 3 and a["configs"] == {"retention.ms": "86400000"}
    assert cluster.describe("inv-b")["configs"] == {"cleanup.policy": "compact"}


def test_a_second_up_changes_nothing_and_says_so(cluster, docker_client):
    before = cluster.started(docker_client)
    p = cluster.ok("up", "-i", cluster.inv, "--output", "json")
    res = json.loads(p.stdout)
    assert res["changed"] is False
    assert {t["action"] for t in res["topics"]} == {"unchanged"}
    assert "topics: 2 as in the inventory; nothing to change" in p.stderr
    assert cluster.started(docker_client) == before


def test_growing_a_topic_is_planned_by_dry_run_then_applied(cluster):
    grown = inventory(cluster.tmp / "grown.yaml", cluster.name,
                      {**TOPICS, "inv-a": {"partitions": 6, "config": {"retention.ms": 3600000}}})
    p = cluster.ok("up", "-i", grown, "--dry-run")
    assert "alter topic inv-a: partitions 3 -> 6, retention.ms 86400000 -> 3600000" in p.stdout
    assert len(cluster.describe("inv-a")["partitions"]) == 3          # a dry run changes nothing
    dry = json.loads(cluster.ok("up", "-i", grown, "--dry-run", "--output", "json").stdout)
    assert [t["action"] for t in dry["topics"]] == ["alter", "unchanged"] and dry["dry_run"]
    cluster.ok("up", "-i", grown)
    a = cluster.describe("inv-a")
    assert len(a["partitions"]) == 6 and a["configs"] == {"retention.ms": "3600000"}
    again = json.loads(cluster.ok("up", "-i", grown, "--output", "json").stdout)
    assert again["changed"] is False


def test_shrinking_or_re_replicating_is_refused_before_anything_changes(cluster, docker_client):
    before_nodes = cluster.started(docker_client)
    before_b = cluster.describe("inv-b")
    wanted_a = len(cluster.describe("inv-a")["partitions"])
    # a shrink of inv-a beside a change to inv-b that would be fine alone: neither happens
    bad = inventory(cluster.tmp / "shrink.yaml", cluster.name,
                    {"inv-a": {"partitions": 2}, "inv-b": {"partitions": 2, "config": {"cleanup.policy": "delete"}}})
    for args in (("up", "-i", bad), ("up", "-i", bad, "--dry-run")):
        p = cluster.kops(*args)
        assert p.returncode == 2, p.stderr
        assert "topics.inv-a.partitions: 2 is fewer than the" in p.stderr
    refused = inventory(cluster.tmp / "refused.yaml", cluster.name, {
        "inv-b": {"partitions": 2}, "inv-a": {"partitions": wanted_a, "config": {"retention.ms": "not-a-number"}}})
    p = cluster.kops("up", "-i", refused)
    assert p.returncode == 2 and "topics.inv-a: Kafka refuses it" in p.stderr and "retention.ms" in p.stderr
    rf = inventory(cluster.tmp / "rf.yaml", cluster.name, {"inv-b": {"replication_factor": 2, "partitions": 2}})
    p = cluster.kops("up", "-i", rf)
    assert p.returncode == 2 and "topics.inv-b.replication_factor: 2 is above the number of brokers (1)" in p.stderr
    assert cluster.describe("inv-b") == before_b
    assert len(cluster.describe("inv-a")["partitions"]) == wanted_a
    assert cluster.started(docker_client) == before_nodes


# -- topics -----------------------------------------------------------------------------------------

def test_topic_create_list_describe_alter_delete(cluster):
    c = cluster
    assert "topic t-crud created" in c.ok("topic", "create", "t-crud", "-p", "2", "-r", "1",
                                          "-c", "retention.ms=60000", "--name", c.name).stdout
    again = c.on("topic", "create", "t-crud")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert c.on("topic", "create", "t-crud", "--if-not-exists").returncode == 0
    listed = json.loads(c.ok("topic", "list", "--name", c.name, "--output", "json").stdout)
    names = {t["topic"] for t in listed}
    assert {"t-crud", "inv-a", "inv-b"} <= names and not any(n.startswith("__") for n in names)
    assert any(t["internal"] for t in json.loads(c.ok("topic", "list", "--all", "--name", c.name,
                                                      "--output", "json").stdout))
    table = c.ok("topic", "list", "--name", c.name).stdout
    assert "t-crud" in table and "PARTITIONS" in table
    d = c.describe("t-crud")
    assert [p["partition"] for p in d["partitions"]] == [0, 1]
    assert all(p["leader"] == 1 and p["replicas"] == [1] and p["isr"] == [1] and p["low"] == 0 and p["high"] == 0
               for p in d["partitions"])
    assert d["configs"] == {"retention.ms": "60000"}
    text = c.ok("topic", "describe", "t-crud", "--name", c.name).stdout
    assert "LEADER" in text and "ISR" in text and "retention.ms=60000" in text
    c.ok("topic", "alter", "t-crud", "-p", "4", "-c", "cleanup.policy=compact", "-d", "retention.ms", "--name", c.name)
    d = c.describe("t-crud")
    assert len(d["partitions"]) == 4 and d["configs"] == {"cleanup.policy": "compact"}
    fewer = c.on("topic", "alter", "t-crud", "-p", "2")
    assert fewer.returncode == 2 and "cannot remove partitions" in fewer.stderr
    no_tty = c.on("topic", "delete", "t-crud")
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    assert c.on("topic", "delete", "t-crud", input="n\n").returncode != 0
    c.ok("topic", "delete", "t-crud", "--yes", "--name", c.name)
    gone = c.on("topic", "describe", "t-crud")
    assert gone.returncode == 3 and "does not exist" in gone.stderr


@pytest.mark.parametrize("topic", ["bad\nname", "it's", 'a"b', "$(touch /tmp/t11-pwned)", "../etc", "..", "a b",
                                   "x" * 250])
def test_hostile_topic_names_exit_2_naming_the_argument(cluster, topic):
    for args in (("topic", "create", topic), ("produce", topic), ("consume", topic, "-n", "1"),
                 ("topic", "describe", topic)):
        p = cluster.on(*args, input="")
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "TOPIC:" in p.stderr and "is not a topic name" in p.stderr
    assert not Path("/tmp/t11-pwned").exists()


def test_hostile_values_of_flags_exit_2(cluster):
    for args, words in ((("topic", "create", "ok-topic", "-p", "100000"), "use 1 to 10000"),
                        (("topic", "create", "ok-topic", "-c", "retention.ms=1\n2"), "-c"),
                        (("topic", "create", "ok-topic", "-c", "$(id)=1"), "-c"),
                        (("consume", "inv-a", "-f", "%q"), "%q is not a field"),
                        (("consume", "inv-a", "--from", "$(id)"), "--from"),
                        (("produce", "inv-a", "-H", "noequals"), "-H"),
                        (("topic", "list", "-X", "nonsense"), "-X")):
        p = cluster.on(*args, input="")
        assert p.returncode == 2, (args, p.stderr)
        assert words in p.stderr, (args, p.stderr)
    assert cluster.on("topic", "describe", "ok-topic").returncode == 3     # nothing was created


# -- produce / consume --------------------------------------------------------------------------------

def test_produce_then_consume_round_trip_with_keys_headers_template_and_json(cluster):
    c = cluster
    c.ok("topic", "create", "t-rt", "-p", "3", "--name", c.name)
    lines = [f"key-{i % 7}|value {i} with spaces" for i in range(100)]
    p = c.ok("produce", "t-rt", "-k", "|", "-H", "src=it", "-H", "run=7", "-v", "--name", c.name,
             input="\n".join(lines) + "\n")
    offsets = [row.split("\t") for row in p.stdout.splitlines()]
    assert len(offsets) == 100 and all(o[1].startswith("partition ") and o[2].startswith("offset ") for o in offsets)
    assert "produced 100 message(s) to t-rt" in p.stderr
    fmt = c.ok("consume", "t-rt", "-n", "100", "-f", "%k|%v|%h|%p\\n", "--name", c.name).stdout
    got = fmt.splitlines()
    assert len(got) == 100
    assert sorted("|".join(g.split("|")[:2]) for g in got) == sorted(lines)
    assert all(g.split("|")[2] == "src=it,run=7" for g in got)
    by_key = {}
    for g in got:                                  # one key, one partition
        k, _v, _h, part = g.split("|")
        by_key.setdefault(k, set()).add(part)
    assert all(len(ps) == 1 for ps in by_key.values())
    js = c.ok("consume", "t-rt", "-n", "100", "--output", "json", "--name", c.name).stdout
    recs = [json.loads(line) for line in js.splitlines()]
    assert sorted(f"{r['key']}|{r['value']}" for r in recs) == sorted(lines)
    assert all(r["headers"] == [["src", "it"], ["run", "7"]] and r["topic"] == "t-rt" and r["timestamp"] > 0
               for r in recs)
    # -e: exit at the end; --from -2: the last two of each partition
    tail = c.ok("consume", "t-rt", "--from", "-2", "-e", "--name", c.name).stdout.splitlines()
    assert len(tail) == 6
    idle = c.kops("consume", "t-rt", "--from", "end", "--timeout", "1.5", "--name", c.name)
    assert idle.returncode == 0 and idle.stdout == "" and "1.5 s without a message" in idle.stderr
    short = c.kops("consume", "t-rt", "--from", "end", "--timeout", "1", "-n", "5", "--name", c.name)
    assert short.returncode == 4 and "0 of 5 messages" in short.stderr


def test_produce_to_a_missing_topic_is_a_clear_error(cluster):
    t0 = time.monotonic()
    p = cluster.on("produce", "t-missing", input="x\n")
    assert p.returncode == 3, p.stderr
    assert "topic t-missing does not exist" in p.stderr and "kops topic create t-missing" in p.stderr
    assert time.monotonic() - t0 < 30
    assert cluster.on("topic", "describe", "t-missing").returncode == 3


def test_group_lag_reset_and_refusal_while_active(cluster):
    c = cluster
    c.ok("topic", "create", "t-grp", "-p", "2", "--name", c.name)
    c.ok("produce", "t-grp", "--name", c.name, input="".join(f"m{i}\n" for i in range(100)))
    c.ok("consume", "t-grp", "-g", "g-it", "-n", "40", "--name", c.name)
    d = json.loads(c.ok("group", "describe", "g-it", "--output", "json", "--name", c.name).stdout)
    assert d["state"] == "EMPTY" and d["members"] == []
    assert [r["partition"] for r in d["offsets"]] == [0, 1]       # a partition never read shows too
    assert sum(r["committed"] or 0 for r in d["offsets"]) == 40 and d["lag"] == 60
    assert all(r["lag"] == r["end"] - (r["committed"] or 0) for r in d["offsets"])
    assert "g-it" in c.ok("group", "list", "--name", c.name).stdout
    dry = c.ok("group", "reset-offsets", "g-it", "--to-earliest", "--output", "json", "--name", c.name)
    plan = json.loads(dry.stdout)
    assert not plan["executed"] and {r["new"] for r in plan["partitions"]} == {0}
    assert "dry run: nothing was changed" in dry.stderr
    assert json.loads(c.ok("group", "describe", "g-it", "--output", "json", "--name", c.name).stdout)["lag"] == 60
    c.ok("group", "reset-offsets", "g-it", "--to-earliest", "--execute", "--name", c.name)
    again = c.ok("consume", "t-grp", "-g", "g-it", "--timeout", "3", "--name", c.name).stdout.splitlines()
    assert sorted(again) == sorted(f"m{i}" for i in range(100))
    # an active member: reset refused (exit 2), then Ctrl-C stops it cleanly (exit 130, offsets kept)
    proc = subprocess.Popen([KOPS, "consume", "t-grp", "-g", "g-it", "--from", "end", "--name", c.name],
                            env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def joined():
            d = json.loads(c.ok("group", "describe", "g-it", "--output", "json", "--name", c.name).stdout)
            return d if d["members"] and d["state"] == "STABLE" else None
        # a join passes through PREPARING/COMPLETING_REBALANCING before the group settles
        d = poll(joined, timeout=60, what="the consumer to join group g-it and the group to settle")
        assert len(d["members"]) == 1
        refused = c.on("group", "reset-offsets", "g-it", "--to-earliest", "--execute")
        assert refused.returncode == 2 and "active member" in refused.stderr
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "consumer closed" in err, err
    d = json.loads(c.ok("group", "describe", "g-it", "--output", "json", "--name", c.name).stdout)
    assert d["members"] == [] and d["lag"] == 0
    # a group told where to start: the last 3 of each partition, then committed at the end
    tail = c.ok("consume", "t-grp", "-g", "g-from", "--from", "-3", "-e", "--name", c.name).stdout.splitlines()
    assert len(tail) == 6
    d = json.loads(c.ok("group", "describe", "g-from", "--output", "json", "--name", c.name).stdout)
    assert d["lag"] == 0 and all(r["committed"] == r["end"] for r in d["offsets"])


# -- env --write and any --bootstrap-server ---------------------------------------------------------------

def test_env_write_gives_a_client_what_it_needs(cluster, tmp_path):
    c = cluster
    p = c.ok("env", "--name", c.name, "--write", tmp_path / "client")
    files = {f.name: f for f in (tmp_path / "client").iterdir()}
    assert set(files) == {"ca.pem", "client.properties", "librdkafka.conf", "client.json"}
    for n in ("client.properties", "librdkafka.conf", "client.json"):
        assert files[n].stat().st_mode & 0o777 == 0o600, n
    password = json.loads(files["client.json"].read_text())["sasl.password"]
    assert password not in p.stdout + p.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in p.stdout.splitlines())
    assert env["KOPS_CLIENT_PROPERTIES"] == str(files["client.properties"])
    # a real client connects with what was written
    from confluent_kafka.admin import AdminClient

    conf = json.loads(files["client.json"].read_text())
    md = AdminClient(conf).list_topics(timeout=20)
    assert "inv-a" in md.topics
    # and kops itself, pointed at the bare address with either file
    for f in ("client.properties", "librdkafka.conf"):
        out = c.ok("topic", "list", "-b", conf["bootstrap.servers"], "--command-config", files[f]).stdout
        assert "inv-a" in out
    # Kafka's own Java tool reads client.properties (PEM truststore, SCRAM JAAS line) as written
    from kops.artifacts import dist

    d = dist.require("4.4.0")
    java = subprocess.run(["java", "-Xmx128m", "-cp", f"{d.path}/libs/*", "org.apache.kafka.tools.TopicCommand",
                           "--bootstrap-server", conf["bootstrap.servers"], "--command-config",
                           str(files["client.properties"]), "--list"], capture_output=True, text=True, timeout=120)
    assert java.returncode == 0 and "inv-a" in java.stdout.split(), java.stderr[-2000:]
    plain = c.kops("topic", "list", "-b", conf["bootstrap.servers"], "--request-timeout", "3")
    assert plain.returncode != 0
    both = c.kops("topic", "list", "-b", conf["bootstrap.servers"], "--name", c.name)
    assert both.returncode == 2


def test_env_evaluated_in_a_shell_connects_a_client(cluster, tmp_path):
    """What a CI job does: eval the exports in a real shell, then a client that knows only
    the environment connects (bootstrap from KAFKA_BOOTSTRAP_SERVERS, the secure settings
    from the librdkafka file the exports name)."""
    client = ("import os, sys\n"
              "from confluent_kafka.admin import AdminClient\n"
              "conf = dict(l.strip().split('=', 1) for l in open(os.environ['KOPS_LIBRDKAFKA_CONF'])\n"
              "            if '=' in l and not l.startswith('#'))\n"
              "conf['bootstrap.servers'] = os.environ['KAFKA_BOOTSTRAP_SERVERS']\n"
              "print(' '.join(sorted(AdminClient(conf).list_topics(timeout=20).topics)))\n")
    (tmp_path / "client.py").write_text(client)
    script = (f'eval "$({KOPS} env --name {cluster.name} --write {tmp_path / "out"})" && '
              f'test -n "$KAFKA_BOOTSTRAP_SERVERS" && exec {sys.executable} {tmp_path / "client.py"}')
    p = subprocess.run(["bash", "-c", script], env=cluster.env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "inv-a" in p.stdout.split()
