"""Which cluster a command acts on, and what sticks to a cluster (issue 21), without an engine:

* the name: --name, else $KOPS_CLUSTER, else the only kops cluster on the engine (several:
  refused, naming them);
* a command that needs an inventory, given a name, loads the one the cluster was made from
  (kept), renamed; the kept profile and host ports are applied, the ports moved only with
  --move-ports (and the moves listed);
* the words around it: the exec note on localhost addresses, `kops init --any-port`'s
  header, `kops env` of brokers not created yet.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from kops.cli import cluster as cl
from kops.cli import config as cfg
from kops.cli import nodes as cli_nodes
from kops.cli.main import cli
from kops.core.errors import InputError
from kops.model import inventory as invlib
from kops.model.spec import DEFAULT_PRESET
from kops.store import state

NONE = (None, None, False)   # spec_source: no -i, no --preset


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("KOPS_CLUSTER", raising=False)
    return tmp_path


@pytest.fixture
def engine(monkeypatch):
    """The kops clusters a fake Docker engine holds (set the list)."""
    import kops.providers.docker as docker

    held: list[str] = []

    class Fake:
        def __init__(self, *a, **kw):
            pass

        def clusters(self):
            return {n: [] for n in held}

    monkeypatch.setattr(docker, "DockerProvider", Fake)
    return held


def kept(name: str, source: str, ports=None, profile=None) -> None:
    state.note_source(name, source)
    if ports:
        state.note_ports(name, ports)
    state.note_profile(name, profile)


# -- the name ---------------------------------------------------------------------------------

@pytest.mark.parametrize("names,meant", [([], None), ([DEFAULT_PRESET], None), (["walk1"], "walk1")])
def test_the_only_cluster_is_the_default(names, meant):
    assert cl.choose_default(names) == meant


@pytest.mark.parametrize("names", [["a", "b"], [DEFAULT_PRESET, "walk1"]])
def test_several_clusters_are_refused_naming_them(names):
    with pytest.raises(InputError) as err:
        cl.choose_default(names)
    assert err.value.message.startswith("which cluster?") and all(n in err.value.message for n in names)
    assert all(f"--name {n}" in err.value.hint for n in names) and "KOPS_CLUSTER" in err.value.hint


def test_kops_cluster_is_the_default_of_name(monkeypatch, engine):
    engine.extend(["a", "b"])   # several: only the variable avoids the refusal
    monkeypatch.setenv("KOPS_CLUSTER", "walk1")
    t = cl.Target(NONE)
    assert (t.name, t.spec, t.scope) == ("walk1", None, " --name walk1")
    # --name and -i/--preset win over it
    assert cl.Target(NONE, "other").name == "other"
    assert cl.Target((None, "kraft-single", False)).name == "kraft-single"


@pytest.mark.parametrize("value", ["Walk1", "../x", "a b", "x" * 40])
def test_a_bad_kops_cluster_is_bad_input(monkeypatch, value):
    monkeypatch.setenv("KOPS_CLUSTER", value)
    with pytest.raises(InputError, match="KOPS_CLUSTER=.* is not a cluster name"):
        cl.Target(NONE)


def test_an_empty_kops_cluster_is_unset(monkeypatch):
    monkeypatch.setenv("KOPS_CLUSTER", " ")
    assert cl.env_cluster() is None


def test_the_only_cluster_on_the_engine_is_meant(engine):
    engine.append("walk1")
    t = cl.Target(NONE)
    assert (t.name, t.spec, t.scope) == ("walk1", None, " --name walk1")


def test_several_clusters_without_a_name_are_refused(engine):
    engine.extend(["walk1", "walk2"])
    with pytest.raises(InputError, match="which cluster"):
        cl.Target(NONE)


# -- a command that needs the inventory ---------------------------------------------------------

def test_a_name_brings_the_inventory_it_was_made_from_with_what_sticks(engine):
    kept("walk1", "preset kraft-single as walk1", {"kafka1": {"external": 40001, "docker": 40002}}, "fast")
    t = cl.Target(NONE, "walk1", allow_name=False)
    assert t.spec.name == "walk1" and t.scope == " --name walk1"
    assert t.source == "preset kraft-single as walk1"   # the same words: no --reshape guard
    assert (t.spec.profile, t.spec.ports) == ("fast", "auto")
    assert invlib.load(None, "kraft-single").profile == "standard"


def test_up_without_flags_keeps_the_ports_and_profile_and_says_so(engine, capsys):
    kept("walk1", "preset kraft-single as walk1", {"kafka1": {"external": 40001}}, "fast")
    t = cl.Target(NONE, allow_name=False, existing=False)
    t.adjust("walk1", any_port=False)
    assert (t.spec.name, t.spec.profile, t.spec.ports) == ("walk1", "fast", "auto")
    err = capsys.readouterr().err
    assert "keeps its host ports (kafka1 40001)" in err and "--move-ports" in err
    assert "keeps the fast profile" in err


def test_profile_given_again_wins(engine):
    kept("walk1", "preset kraft-single as walk1", None, "fast")
    t = cl.Target(NONE, allow_name=False, existing=False)
    t.adjust("walk1", any_port=False, profile="standard")
    assert t.spec.profile == "standard"


def test_move_ports_lists_each_port_that_moves(engine):
    kept("walk1", "preset kraft-single as walk1", {"kafka1": {"external": 40001, "docker": 40002}})
    t = cl.Target(NONE, allow_name=False, existing=False)
    t.adjust("walk1", any_port=False, move_ports=True)
    assert t.spec.ports == "fixed"
    assert t.moves == ["kafka1 docker: 40002 -> 29092", "kafka1 external: 40001 -> 9092"]
    with pytest.raises(InputError, match="--move-ports"):
        t.adjust("walk1", any_port=True, move_ports=True)


def test_an_inventory_naming_the_cluster_keeps_its_ports(sandbox, engine):
    kept("dev", "preset kraft-single as dev", {"kafka1": {"external": 40001}})
    inv = sandbox / "dev.yaml"
    inv.write_text((invlib.preset_path("kraft-single")).read_text().replace("name: kraft-single", "name: dev"))
    t = cl.Target((str(inv), None, False))
    assert t.spec.name == "dev" and t.spec.ports == "auto" and t.scope == f" -i {inv}"


def test_a_kept_file_is_loaded_again(sandbox, engine):
    inv = sandbox / "mine.yaml"
    inv.write_text(invlib.preset_path("dev").read_text().replace("name: dev", "name: mine"))
    kept("mine", f"file {inv}")
    t = cl.Target(NONE, "mine", allow_name=False)
    assert t.spec.mode == "kraft" and t.source == f"file {inv}"
    inv.unlink()
    with pytest.raises(InputError, match="which is not there any more"):
        cl.Target(NONE, "mine", allow_name=False)


def test_without_a_kept_inventory(engine):
    # named: the default preset's shape, as `kops up --name NAME` makes it
    assert cl.Target(NONE, "walk9", allow_name=False).spec.mode == invlib.load().mode
    # implied (the only cluster there): not guessed
    engine.append("walk9")
    with pytest.raises(InputError, match="keeps no inventory"):
        cl.Target(NONE, allow_name=False)


@pytest.mark.parametrize("source,found", [
    ("preset kraft-single", (None, "kraft-single")),
    ("preset kraft-single as walk1", (None, "kraft-single")),
    ("file /x/dev.yaml", ("/x/dev.yaml", None)),
    ("file /x/my file as walk1", ("/x/my file", None)),
    ("file /x/a as Not-A-Name", ("/x/a as Not-A-Name", None)),
    ("nonsense", None),
])
def test_kept_source(source, found):
    state.note_source("c1", source)
    assert state.kept_source("c1") == found


def test_purge_forgets_what_sticks():
    kept("walk1", "preset dev", {"kafka1": {"external": 1}}, "fast")
    state.forget("walk1")
    assert (state.ports("walk1"), state.profile("walk1"), state.kept_source("walk1")) == (None, None, None)


def test_port_moves():
    assert cl.port_moves({"kafka1": {"external": 1, "docker": 2}, "zoo1": {"client": 3}},
                         {"kafka1": {"external": 9092, "docker": 2}, "zoo1": {"client": 2181}}) \
        == ["kafka1 external: 1 -> 9092", "zoo1 client: 3 -> 2181"]
    assert cl.port_moves(None, {"kafka1": {"external": 9092}}) == []


# -- the words around it ------------------------------------------------------------------------

ADDR = {"kafka1": {"host": "127.0.0.1:40001", "network": "kafka1:19092", "containers": "host.docker.internal:40002",
                   "kafka": "1"},
        "kafka2": {"host": "127.0.0.1:40003", "network": "kafka2:19092", "kafka": "1"}}


def test_exec_names_the_way_inside_a_node():
    asked = cli_nodes.local_addresses(["--bootstrap-server", "localhost:9092", "x=127.0.0.1:40001"])
    assert asked == [("localhost:9092", 9092), ("127.0.0.1:40001", 40001)]
    words = cli_nodes.listener_hint("kafka1", ADDR, asked, " --name walk1")
    assert words.startswith("localhost:9092 is not a listener inside kafka1 (on the host this node is 127.0.0.1:40001)")
    assert "$KAFKA_BOOTSTRAP_SERVERS (kafka1:19092,kafka2:19092)" in words and "kops exec kafka1 --name walk1 --" in words
    # the node's own ports, and no localhost at all: nothing to say
    assert cli_nodes.listener_hint("kafka1", ADDR, [("localhost:19092", 19092), ("localhost:40001", 40001)]) is None
    assert cli_nodes.local_addresses(["kafka-topics", "--bootstrap-server", "kafka1:19092", "notlocalhost:1"]) == []


@pytest.mark.parametrize("preset", invlib.preset_names())
def test_init_any_port_header_names_no_fixed_port(preset, sandbox):
    out = sandbox / "x.yaml"
    r = CliRunner().invoke(cli, ["init", "--preset", preset, "--any-port", "-o", str(out)])
    if preset.startswith("ssh-"):   # ports: auto is for Docker: refused, nothing written
        assert r.exit_code == 2 and not out.exists(), r.output
        return
    assert r.exit_code == 0, r.output
    text = out.read_text()
    head = [line for line in text.splitlines() if line.startswith("#")][:8]
    assert cfg.AUTO_PORTS_NOTE in head, text
    assert not any(cfg._FIXED_ADDRESS.search(line) for line in head), head
    assert yaml.safe_load(text)["ports"] == "auto" and invlib.load(out).ports == "auto"


def test_init_without_any_port_keeps_the_header():
    text = invlib.preset_path("kraft-split").read_text()
    assert cfg.auto_ports_header(cfg.with_auto_ports(text)) != text
    assert "127.0.0.1:9092" in text


def test_env_refuses_brokers_not_created_yet():
    spec = SimpleNamespace(ports="auto")
    st = SimpleNamespace(nodes=[SimpleNamespace(name="kafka1", role="broker", state="running"),
                                SimpleNamespace(name="kafka2", role="broker", state="missing"),
                                SimpleNamespace(name="zoo1", role="zookeeper", state="missing")])
    assert cl._unpicked_ports(spec, st) == ["kafka2"]
    assert cl._unpicked_ports(SimpleNamespace(ports="fixed"), st) == []
    assert cl._unpicked_ports(None, st) == []


@pytest.mark.parametrize("command", [["restart"], ["migrate"], ["certs"], ["client-config"], ["upgrade"],
                                     ["status"], ["down"], ["logs"], ["check"], ["env"], ["exec"], ["shell"]])
def test_every_command_on_a_cluster_takes_name(command):
    r = CliRunner().invoke(cli, [*command, "--help"])
    assert r.exit_code == 0 and "--name" in r.output, r.output


def test_up_help_names_move_ports():
    r = CliRunner().invoke(cli, ["up", "--help"])
    assert "--move-ports" in r.output and "kept for the cluster" in r.output
