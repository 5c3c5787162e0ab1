"""Inventory loading and validation (kops.spec), and the `init` / `render` commands.

Every bad inventory must raise SpecError (exit code 2) naming the field and what is
allowed, before anything is created. Pure: no Docker, no network; state goes to tmp.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kops.model import inventory as speclib
from kops.cli.main import cli
from kops.core.errors import EXIT_INPUT, InputError
from kops.model.spec import SpecError

SSH3 = """\
driver: ssh
hosts:
  vm1: {address: 10.0.0.11, roles: [zookeeper, broker]}
  vm2: {address: 10.0.0.12, roles: [zookeeper, broker]}
  vm3: {address: 10.0.0.13, roles: [zookeeper, broker]}
"""

# (id, inventory text, fragments that must all appear in the message)
BAD = [
    ("unknown-top-key", "brokres: {nodes: 1}\n",
     ["brokres: unknown key", "did you mean brokers?", "known keys:"]),
    ("unknown-nested-key", "kafka: {verison: 3.9.2}\n",
     ["kafka.verison: unknown key", "did you mean kafka.version?"]),
    ("unknown-key-no-suggestion", "zzzzzz: 1\n", ["zzzzzz: unknown key; known keys:"]),
    ("wrong-type", "brokers: {nodes: three}\n", ["brokers.nodes", "'three'", "integer"]),
    ("zero-nodes", "brokers: {nodes: 0}\n", ["brokers.nodes", "0", "greater than or equal to 1"]),
    ("zk-even-2", "zookeeper: {nodes: 2}\n", ["zookeeper.nodes: 2 is even", "use 1, 3 or 5"]),
    ("zk-even-4", "zookeeper: {nodes: 4}\n", ["zookeeper.nodes: 4 is even"]),
    ("zk-nine", "zookeeper: {nodes: 9}\n", ["zookeeper.nodes: 9 is not valid", "less than or equal to 7"]),
    ("zk-mode-kafka4", "kafka: {version: 4.4.0, mode: zookeeper}\n",
     ["kafka.mode: zookeeper needs Kafka below 4.0", "'4.4.0'"]),
    ("zk-section-in-kraft", "kafka: {version: 4.4.0}\nzookeeper: {nodes: 1}\n",
     ["zookeeper: not used in KRaft mode"]),
    ("zk-section-kraft-3x", "kafka: {version: 3.9.2, mode: kraft}\nzookeeper: {nodes: 3}\n",
     ["zookeeper: not used in KRaft mode"]),
    ("controllers-in-zk-mode", "kafka: {version: 3.9.2}\ncontrollers: {nodes: 3}\n",
     ["controllers: dedicated controllers exist only in KRaft mode"]),
    ("kraft-even-combined", "kafka: {version: 4.4.0}\nbrokers: {nodes: 2}\n",
     ["brokers.nodes: 2 combined broker,controller nodes make an even KRaft quorum"]),
    ("kraft-even-controllers", "kafka: {version: 4.4.0}\ncontrollers: {nodes: 4}\n",
     ["controllers.nodes: 4 is even"]),
    ("duplicate-node-id", "brokers: {nodes: 3}\nnodes: {kafka2: {id: 1}}\n",
     ["nodes.kafka2.id: 1 is also the id of kafka1", "unique"]),
    ("unknown-node-override", "brokers: {nodes: 3}\nnodes: {kafak2: {heap: 1g}}\n",
     ["nodes.kafak2: no such node", "did you mean kafka2?", "kafka1, kafka2, kafka3, zoo1"]),
    ("unknown-node-override-key", "nodes: {kafka1: {hepa: 1g}}\n",
     ["nodes.kafka1.hepa: unknown key", "did you mean nodes.kafka1.heap?"]),
    ("port-clash", "zookeeper: {client_port: 9092}\n",
     ["port 9092", "kafka1 (external)", "zoo1 (client)", "change one of the *_port settings"]),
    ("port-clash-internal-ranges", "brokers: {nodes: 3, docker_port: 9093}\n",
     ["port 9093"]),
    ("rf-above-brokers", "kafka: {config: {default.replication.factor: 3}}\nbrokers: {nodes: 1}\n",
     ["kafka.config.default.replication.factor: 3 is above the number of brokers (1)"]),
    ("min-isr-above-brokers", "brokers: {nodes: 1, config: {min.insync.replicas: 2}}\n",
     ["brokers.config.min.insync.replicas: 2 is above the number of brokers (1)"]),
    ("rf-not-a-number", "kafka: {config: {offsets.topic.replication.factor: lots}}\n",
     ["offsets.topic.replication.factor: 'lots' is not a whole number"]),
    ("min-isr-zero", "kafka: {config: {min.insync.replicas: 0}}\n",
     ["min.insync.replicas: 0 must be at least 1"]),
    ("bad-heap", "kafka: {heap: '512'}\n", ["kafka.heap", "'512'", "256m or 1g"]),
    ("bad-node-heap", "nodes: {kafka1: {heap: 2GB}}\n", ["nodes.kafka1.heap", "256m or 1g"]),
    ("bad-cluster-id", "kafka: {version: 4.4.0, cluster_id: not-an-id}\n",
     ["kafka.cluster_id: 'not-an-id' is not a Kafka cluster id", "22 characters"]),
    ("cluster-id-leading-dash", "kafka: {version: 4.4.0, cluster_id: -kU3OEVBNTcwNTJENDM2Qk}\n",
     ["kafka.cluster_id"]),
    ("bad-name", "name: Dev_1\n", ["name: 'Dev_1' is not DNS-safe"]),
    ("bad-version", "kafka: {version: '3.9'}\n", ["kafka.version: '3.9' is not a version", "X.Y.Z"]),
    ("version-unquoted-float", "kafka: {version: 3.9}\n", ["kafka.version: 3.9 is a number", "in quotes", "'3.9.0'"]),
    ("version-too-old", "kafka: {version: 2.8.2}\n", ["kafka.version: '2.8.2' is too old"]),
    ("bad-mode", "kafka: {mode: raft}\n", ["kafka.mode", "'raft' is not allowed", "'zookeeper' or 'kraft'"]),
    ("bad-driver", "driver: k8s\n", ["driver", "'k8s' is not allowed"]),
    ("ssh-without-hosts", "driver: ssh\n", ["hosts: driver: ssh needs at least one host"]),
    ("ssh-too-few-broker-hosts",
     "driver: ssh\nbrokers: {nodes: 3}\nhosts:\n"
     "  a: {address: 10.0.0.1, roles: [zookeeper, broker]}\n"
     "  b: {address: 10.0.0.2, roles: [broker]}\n"
     "  c: {address: 10.0.0.3, roles: [controller]}\n",
     ["hosts: 3 broker node(s) need 3 host(s) with role broker, and 2 have it"]),
    ("ssh-no-zookeeper-host", "driver: ssh\nhosts: {a: {address: 10.0.0.1, roles: [broker]}}\n",
     ["1 zookeeper node(s) need 1 host(s) with role zookeeper, and 0 have it"]),
    ("ssh-zk-role-in-kraft",
     "driver: ssh\nkafka: {version: 4.4.0}\nhosts: {a: {address: 10.0.0.1, roles: [zookeeper, broker]}}\n",
     ["role zookeeper is given, but a KRaft cluster has no ZooKeeper"]),
    ("ssh-bad-role", "driver: ssh\nhosts: {a: {address: 10.0.0.1, roles: [kafka]}}\n",
     ["hosts.a.roles.0", "'kafka' is not allowed"]),
    ("ssh-host-no-roles", "driver: ssh\nhosts: {a: {address: 10.0.0.1, roles: []}}\n",
     ["hosts.a.roles"]),
    ("ssh-host-no-address", "driver: ssh\nhosts: {a: {roles: [broker]}}\n",
     ["hosts.a.address: required and missing"]),
    ("ssh-host-bad-name", "driver: ssh\nhosts: {VM_1: {address: 10.0.0.1, roles: [zookeeper, broker]}}\n",
     ["hosts.VM_1: 'VM_1' is not DNS-safe"]),
    ("hosts-with-docker", "hosts: {a: {address: 10.0.0.1, roles: [broker]}}\n",
     ["hosts: only used with driver: ssh"]),
    ("missing-key-file",
     "driver: ssh\nhosts: {a: {address: 10.0.0.1, key: /nonexistent/id_ed25519, roles: [zookeeper, broker]}}\n",
     ["hosts.a.key: '/nonexistent/id_ed25519': no such file"]),
    ("invalid-yaml", "name: x\nkafka: {version: [\n  bad: : :\n",
     ["not valid YAML line 3 column"]),
    ("invalid-yaml-tab", "name: x\nkafka:\n\tversion: 3.9.2\n", ["not valid YAML line 3"]),
    ("top-level-list", "- a\n- b\n", ["the top level must be a mapping of keys, not list"]),
    ("top-level-scalar", "just words\n", ["the top level must be a mapping of keys, not str"]),
]


@pytest.mark.parametrize("text,fragments", [(t, f) for _, t, f in BAD], ids=[i for i, _, _ in BAD])
def test_bad_inventory(text, fragments):
    with pytest.raises(SpecError) as ei:
        speclib.loads(text, "x.yaml")
    err = ei.value
    assert err.exit_code == EXIT_INPUT == 2
    assert isinstance(err, InputError)
    assert err.message.startswith("x.yaml: "), err.message
    assert err.problems, "SpecError without problems"
    assert err.hint and "kops init --preset" in err.hint
    for frag in fragments:
        assert frag in err.message, f"{frag!r} not in:\n{err.message}"


def test_single_problem_is_counted():
    with pytest.raises(SpecError) as ei:
        speclib.loads("name: Dev_1\n", "x.yaml")
    assert "x.yaml: 1 problem in the inventory:" in ei.value.message


def test_several_whole_spec_problems_reported_at_once():
    text = ("name: Dev_1\nkafka: {version: '3.9', cluster_id: bad}\nzookeeper: {nodes: 4}\n"
            "hosts: {a: {address: 10.0.0.1, roles: [broker]}}\n")
    with pytest.raises(SpecError) as ei:
        speclib.loads(text, "x.yaml")
    msg = ei.value.message
    assert "x.yaml: 5 problems in the inventory:" in msg, msg
    assert len(ei.value.problems) == 5
    for frag in ("name: 'Dev_1'", "kafka.version: '3.9'", "kafka.cluster_id: 'bad'",
                 "zookeeper.nodes: 4 is even", "hosts: only used with driver: ssh"):
        assert frag in msg
    assert msg.count("\n  - ") == 5


def test_several_structure_problems_reported_at_once():
    text = "brokers: {nodes: three}\nkafka: {heap: '512', log_level: LOUD}\ndriver: k8s\n"
    with pytest.raises(SpecError) as ei:
        speclib.loads(text, "x.yaml")
    assert "4 problems" in ei.value.message
    for frag in ("brokers.nodes", "kafka.heap", "kafka.log_level", "driver"):
        assert frag in ei.value.message


def test_unknown_keys_and_rules_reported_together():
    """Unknown keys are dropped and the rest still checked, so both kinds show at once."""
    with pytest.raises(SpecError) as ei:
        speclib.loads("brokres: 1\nname: Dev_1\nzookeeper: {nodes: 2}\n", "x.yaml")
    assert "3 problems" in ei.value.message
    assert "did you mean brokers?" in ei.value.message
    assert "name: 'Dev_1'" in ei.value.message
    assert "zookeeper.nodes: 2 is even" in ei.value.message


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError) as ei:
        speclib.load(tmp_path / "nope.yaml")
    assert ei.value.exit_code == 2
    assert "cannot read inventory" in ei.value.message


def test_load_file_and_preset_conflict(tmp_path):
    with pytest.raises(InputError, match="not both"):
        speclib.load(tmp_path / "x.yaml", preset="kraft-single")


def test_unknown_preset_suggests():
    with pytest.raises(InputError) as ei:
        speclib.preset_path("kraft-singel")
    assert "did you mean 'kraft-single'?" in ei.value.message
    assert ei.value.exit_code == 2


# -- good inventories ----------------------------------------------------------------------

@pytest.mark.parametrize("preset", speclib.preset_names())
def test_every_preset_loads(preset):
    spec = speclib.load(preset=preset)
    assert spec.name
    # and the preset round-trips through loads() from its text
    assert speclib.loads(speclib.preset_path(preset).read_text(), preset) == spec


@pytest.mark.parametrize("text,mode,zk,brokers,controllers", [
    ("{}\n", "zookeeper", 1, 1, 0),
    ("kafka: {version: 3.9.2}\n", "zookeeper", 1, 1, 0),
    ("kafka: {version: 3.9.2, mode: kraft}\n", "kraft", 0, 1, 0),
    ("kafka: {version: 4.4.0}\n", "kraft", 0, 1, 0),
    ("kafka: {version: 4.4.0}\nbrokers: {nodes: 3}\n", "kraft", 0, 3, 0),
    ("kafka: {version: 4.4.0}\ncontrollers: {}\nbrokers: {nodes: 2}\n", "kraft", 0, 2, 3),
    ("zookeeper: {nodes: 3}\nbrokers: {nodes: 2}\n", "zookeeper", 3, 2, 0),
    (SSH3, "zookeeper", 3, 3, 0),
    ("driver: ssh\nhosts:\n  a: {address: 10.0.0.1, roles: [zookeeper, broker]}\n"
     "  b: {address: 10.0.0.2, roles: [broker]}\n", "zookeeper", 1, 2, 0),
    ("driver: ssh\nkafka: {version: 4.4.0}\ncontrollers: {}\nhosts:\n"
     "  a: {address: 10.0.0.1, roles: [controller, broker]}\n"
     "  b: {address: 10.0.0.2, roles: [controller]}\n"
     "  c: {address: 10.0.0.3, roles: [controller]}\n", "kraft", 0, 1, 3),
])
def test_defaults(text, mode, zk, brokers, controllers):
    spec = speclib.loads(text, "x.yaml")
    assert spec.mode == mode
    assert spec.zk_nodes == zk
    assert spec.broker_nodes == brokers
    assert spec.controller_nodes == controllers


def test_default_values():
    spec = speclib.loads("{}", "x.yaml")
    assert spec.name == "kops"
    assert spec.driver == "docker"
    assert spec.kafka.version == "3.9.2"
    assert spec.kafka.image_ref == "kops/kafka:3.9.2"
    assert spec.kafka.heap == "512m"
    assert spec.brokers.external_port == 9092
    assert spec.zk.client_port == 2181


def test_existing_key_file_is_fine(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("not really a key\n")
    spec = speclib.loads(SSH3.replace("roles: [zookeeper, broker]}\n  vm2",
                                      f"key: {key}, roles: [zookeeper, broker]}}\n  vm2", 1), "x.yaml")
    assert spec.hosts["vm1"].key == str(key)


# -- CLI: init and render -------------------------------------------------------------------

@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_render_bad_inventory_exits_2_and_creates_nothing(runner, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("brokres: {nodes: 1}\nzookeeper: {nodes: 2}\n")
    out_dir = tmp_path / "out"
    res = runner.invoke(cli, ["render", "-i", str(bad), "-o", str(out_dir)])
    text = res.output + capsys.readouterr().err
    assert res.exit_code == 2, text
    assert "Error:" in text and "Hint:" in text, text
    assert "did you mean brokers?" in text
    assert "zookeeper.nodes: 2 is even" in text
    assert not out_dir.exists()


def test_render_unknown_preset(runner, tmp_path, capsys):
    res = runner.invoke(cli, ["render", "--preset", "kraft-singel", "-o", str(tmp_path / "o")])
    text = res.output + capsys.readouterr().err
    assert res.exit_code == 2, text
    assert "did you mean 'kraft-single'?" in text
    assert "Hint:" in text
    assert not (tmp_path / "o").exists()


def test_render_preset_nope(runner, tmp_path, capsys):
    res = runner.invoke(cli, ["render", "--preset", "nope", "-o", str(tmp_path / "o")])
    text = res.output + capsys.readouterr().err
    assert res.exit_code == 2, text
    assert "no preset named 'nope'" in text
    assert "kraft-single" in text  # the hint lists the presets


def _renamed(preset: str, name: str) -> str:
    return speclib.preset_path(preset).read_text().replace(f"name: {preset}\n", f"name: {name}\n")


def test_init_writes_preset_and_refuses_to_overwrite(runner, tmp_path, capsys):
    dest = tmp_path / "f.yaml"
    res = runner.invoke(cli, ["init", "--preset", "kraft-split", "-o", str(dest)])
    assert res.exit_code == 0, res.output + capsys.readouterr().err
    assert dest.read_text() == _renamed("kraft-split", "f"), "the preset, named after the file"
    assert speclib.load(dest).controller_nodes == 3
    dest.write_text(dest.read_text() + "# mine\n")
    res = runner.invoke(cli, ["init", "--preset", "kraft-split", "-o", str(dest)])
    text = res.output + capsys.readouterr().err
    assert res.exit_code == 2, text
    assert "exists" in text and "--force" in text
    assert dest.read_text().endswith("# mine\n")
    res = runner.invoke(cli, ["init", "--preset", "kraft-split", "-o", str(dest), "--force"])
    assert res.exit_code == 0
    assert dest.read_text() == _renamed("kraft-split", "f")


def test_init_default_file_name(runner, tmp_path):
    res = runner.invoke(cli, ["init", "--preset", "kraft-single"])
    assert res.exit_code == 0
    assert speclib.load(tmp_path / "cluster.yaml").name == "cluster"


def test_init_list(runner):
    res = runner.invoke(cli, ["init", "--list"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    names = [ln.split()[0] for ln in lines if ln.strip()]
    assert names == speclib.preset_names()
    assert any("three dedicated controllers" in ln for ln in lines if ln.startswith("kraft-split"))


def _compose_labels(out_dir: Path) -> dict:
    doc = yaml.safe_load((out_dir / "docker-compose.yml").read_text())
    return doc["services"]["kafka1"]["labels"]


def test_render_keeps_kraft_cluster_id(runner, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    res = runner.invoke(cli, ["render", "--preset", "kraft-single", "-o", str(a), "--output-format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{"):])
    cid = data["cluster_id"]
    assert data["cluster"] == "kraft-single"
    assert len(cid) == 22 and not cid.startswith("-")
    assert _compose_labels(a)["io.kops.cluster-id"] == cid
    assert sorted(Path(p).relative_to(a).as_posix() for p in data["files"]) == sorted(
        ["docker-compose.yml", "kafka1/server.properties", "kafka1/log4j2.yaml", "kafka1/client.properties"])
    res = runner.invoke(cli, ["render", "--preset", "kraft-single", "-o", str(b)])
    assert res.exit_code == 0, res.output
    assert _compose_labels(b)["io.kops.cluster-id"] == cid
    assert (tmp_path / "state" / "clusters" / "kraft-single" / "cluster.id").read_text().strip() == cid
    # and the rendered files are identical
    for f in ("docker-compose.yml", "kafka1/server.properties"):
        assert (a / f).read_text() == (b / f).read_text()


def test_render_kraft_cluster_id_from_inventory(runner, tmp_path):
    inv = tmp_path / "k.yaml"
    inv.write_text("name: mine\nkafka: {version: 4.4.0, cluster_id: MkU3OEVBNTcwNTJENDM2Qk}\n")
    res = runner.invoke(cli, ["render", "-i", str(inv), "-o", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert _compose_labels(tmp_path / "o")["io.kops.cluster-id"] == "MkU3OEVBNTcwNTJENDM2Qk"
    assert not (tmp_path / "state" / "clusters" / "mine").exists()


def test_render_zookeeper_mode_has_no_cluster_id(runner, tmp_path):
    res = runner.invoke(cli, ["render", "--preset", "zk-single-kafka-single", "-o", str(tmp_path / "o"),
                              "--output-format", "json"])
    assert res.exit_code == 0
    assert json.loads(res.output[res.output.index("{"):])["cluster_id"] is None
    assert "io.kops.cluster-id" not in _compose_labels(tmp_path / "o")


@pytest.mark.parametrize("example", sorted(p.name for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml")))
def test_examples_load_and_render(example, tmp_path, monkeypatch):
    """The example inventories of the README load, and render with the secrets kops makes."""
    from kops.orchestration import lifecycle
    from kops.bundle import render
    from kops.model import topology

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    path = Path(__file__).resolve().parents[2] / "examples" / example
    text = path.read_text()
    if "known_hosts" in text:   # the SSH example names a file of the user's; use one that exists
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        text = text.replace("~/.ssh/known_hosts", str(kh))
    spec = speclib.loads(text, example)
    assert spec.security.tls and spec.security.sasl
    topo = topology.build(spec, "MkU3OEVBNTcwNTJENDM2Qk")
    files = render.export(topo, lifecycle.credentials(spec, topo))
    props = next(v for k, v in files.items() if k.endswith("kafka1/server.properties"))
    assert "SASL_SSL" in props and "ssl.keystore.type=PEM" in props


def test_a_refused_password_is_never_echoed():
    with pytest.raises(SpecError) as ei:
        speclib.loads('name: h\nsecurity: {tls: true, sasl: scram-sha-512, users: {app: {password: "ab\\"; rm -rf /"}}}\n')
    assert "security.users.app.password: not a usable password (the value is not shown)" in ei.value.message
    assert "rm -rf" not in ei.value.message


def test_redaction_hides_passwords_and_nothing_else():
    from kops.cli.common import redact

    assert redact("--add-config SCRAM-SHA-256=[password=s3cret-value]") == "--add-config SCRAM-SHA-256=[password=****]"
    assert redact('ScramLoginModule required username="u" password="s3cret";') == \
        'ScramLoginModule required username="u" password="****";'
    assert redact("sasl.password=s3cret x") == "sasl.password=**** x"
    text = "security.users.app.password: not a usable password: use 12-128 letters"
    assert redact(text) == text
