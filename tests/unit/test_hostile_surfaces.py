"""Hostile inputs on the surfaces added last round (issue 20): each finding has a test that
names it. Every refusal is bad input (exit 2) with the field or file named, nothing written
outside its folder, nothing hung, no "kops bug"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kops.artifacts import dist, plugins
from kops.core import paths
from kops.core.errors import InputError, KopsError
from kops.kafka import data
from kops.model import configdef, inventory
from kops.model.spec import SpecError
from kops.services import connect
from kops.store import secrets

KOPS = str(Path(sys.executable).parent / "kops")
reg = pytest.mark.regression


def load(text: str):
    return inventory.loads("name: hostile\n" + text, "hostile.yaml")


def refused(text: str) -> str:
    with pytest.raises(SpecError) as exc:
        load(text)
    assert exc.value.exit_code == 2
    return "\n".join(exc.value.problems)


# -- plugin paths ---------------------------------------------------------------------------------

@reg(reason="a Maven coordinate of dots named a folder above kops's cache (rmtree of the home folder)")
@pytest.mark.parametrize("coord", ["..:..:..", "org.example:..:..", ".:.:.", "org.example:a:..", "a:.:1.0",
                                   "-x:y:1", "a:b:.1"])
def test_coordinates_that_name_a_folder_above_are_refused(coord):
    assert "not a Maven coordinate" in refused(f"connect: {{nodes: 1, plugins: ['{coord}']}}\n")


@reg(reason="a local jar named ...jar was copied outside plugin.path")
@pytest.mark.parametrize("jar", ["./...jar", "./..jar", "./.hidden.jar", "lib/-x.jar"])
def test_jar_names_that_are_not_a_folder_name_are_refused(jar):
    assert "file name must start with a letter or digit" in refused(f"connect: {{nodes: 1, plugins: ['{jar}']}}\n")


@pytest.mark.parametrize("name", ["..", ".", "...", "", "a/../..", "x" * 500])
def test_a_plugin_folder_is_never_dot_or_dotdot_whatever_the_input(name):
    f = plugins._folder(name)
    assert f not in (".", "..") and "/" not in f and not f.startswith(".") and 0 < len(f) <= 121


def test_rmtree_only_inside_the_plugin_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_CACHE_DIR", str(tmp_path / "cache"))
    base = paths.cache_dir() / "connect-plugins"
    base.mkdir(parents=True)
    assert paths.inside(base, base / "g" / "a" / "1.0") == (base / "g" / "a" / "1.0").resolve()
    for outside in (base / ".." / "..", base, tmp_path, Path("/")):
        with pytest.raises(ValueError):
            paths.inside(base, outside)
    (base / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError):
        paths.inside(base, base / "link" / "x")


# -- values another program expands, per-node overrides -----------------------------------------------

@reg(reason="registry values with ${...} were expanded by the registry (${HOME}, ${PATH})")
@pytest.mark.parametrize("where", ["schema_registry: {config: {quarkus.log.level: '${HOME}'}}\n",
                                   "schema_registry: {}\nnodes: {registry1: {config: {x.y: 'a${PATH}b'}}}\n"])
def test_registry_values_that_it_would_expand_are_refused(where):
    assert "which the registry expands" in refused("kafka: {version: 4.4.0}\n" + where)


@reg(reason="nodes.zooN.config could rewrite the ensemble (server.1)")
@pytest.mark.parametrize("key", ["server.1", "server.7", "group.1", "weight.2"])
def test_per_node_zookeeper_overrides_cannot_rewrite_the_ensemble(key):
    assert f"nodes.zoo1.config.{key}: kops sets this key itself" in refused(
        f"zookeeper: {{nodes: 3}}\nnodes: {{zoo1: {{config: {{{key}: 'evil:2888:3888'}}}}}}\n")


@reg(reason="4lw.commands.whitelist, which kops writes into zoo.cfg, was refused as a key")
def test_zookeeper_keys_may_start_with_a_digit():
    spec = load("zookeeper: {config: {4lw.commands.whitelist: 'ruok,srvr'}}\n")
    assert spec.zk.config["4lw.commands.whitelist"] == "ruok,srvr"


@reg(reason="Connect and registry node keys were checked as broker configs (did you mean log.flush...)")
def test_connect_and_registry_node_keys_are_not_broker_keys():
    spec = load("kafka: {version: 4.4.0}\nconnect: {nodes: 1}\nschema_registry: {}\n"
                "nodes: {connect1: {config: {offset.flush.interval.ms: 5000}}, "
                "registry1: {config: {apicurio.rest.deletion.artifact.enabled: true}}, kafka1: {config: {num.io.threadz: 3}}}\n")
    defs = {"num.io.threads": {"type": "int", "valid": "[1,...]"}}
    found = configdef.problems(spec, defs)
    assert found == [p for p in found if p.startswith("nodes.kafka1.config.num.io.threadz")] and found


# -- secrets read back -----------------------------------------------------------------------------------

@reg(reason="a kept password with a quote broke the JAAS lines")
@pytest.mark.parametrize("pw", ['abc"def;ghijkl', "short", "has space in it!", 42, None])
def test_kept_passwords_are_checked_like_the_inventorys(tmp_path, monkeypatch, pw):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    f = secrets.folder("c1") / "users.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"kops-admin": pw}))
    with pytest.raises(KopsError) as exc:
        secrets.passwords("c1", {}, persist=False)
    assert str(f) in exc.value.message and (not isinstance(pw, str) or pw not in exc.value.message)


# -- files named on the command line ----------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


@reg(reason="--command-config /dev/zero ran out of memory, a FIFO hung")
@pytest.mark.parametrize("which", ["fifo", "dev-zero", "folder", "missing", "big"])
def test_command_config_reads_a_small_regular_file_only(which, fifo, tmp_path):
    path = {"fifo": fifo, "dev-zero": Path("/dev/zero"), "folder": tmp_path, "missing": tmp_path / "nope",
            "big": tmp_path / "big"}[which]
    if which == "big":
        path.write_bytes(b"a=b\n" * 400_000)
    with pytest.raises(InputError) as exc:
        data.read_command_config(str(path))
    assert exc.value.message.startswith("--command-config ") and exc.value.exit_code == 2


@reg(reason="connect create of a FIFO hung, /dev/zero ran out of memory, deep JSON was a RecursionError")
@pytest.mark.parametrize("which", ["fifo", "dev-zero", "deep", "not-json", "array"])
def test_connector_files_are_bounded(which, fifo, tmp_path):
    path = {"fifo": fifo, "dev-zero": Path("/dev/zero")}.get(which, tmp_path / "c.json")
    if which == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif which == "not-json":
        path.write_text("name: x")
    elif which == "array":
        path.write_text("[1, 2]")
    with pytest.raises(InputError) as exc:
        connect.load_connector(str(path))
    assert exc.value.exit_code == 2


def test_a_jar_is_hashed_in_chunks_and_must_be_a_regular_file(tmp_path, fifo, monkeypatch):
    jar = tmp_path / "big.jar"
    with open(jar, "wb") as fh:
        fh.truncate(8 << 20)   # sparse: 8 MiB read in 1 MiB chunks
    import hashlib

    assert plugins._sha256(jar, "x") == hashlib.sha256(b"\0" * (8 << 20)).hexdigest()
    monkeypatch.setattr(plugins, "MAX_JAR_BYTES", 1 << 20)
    with pytest.raises(InputError, match="more than a plugin jar has"):
        plugins._sha256(jar, "x")
    with pytest.raises(InputError, match="not a regular file"):
        plugins._sha256(fifo, "x")


@reg(reason="client-config -o wrote the admin password through a planted symlink")
def test_outputs_are_never_written_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "out" / "client.properties"
    link.parent.mkdir()
    link.symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        data.write_client_files(tmp_path / "out", "127.0.0.1:9092", {"security.protocol": "SASL_SSL",
                                                                     "sasl.password": "s3cret-pass-word"})
    assert victim.read_text() == "keep"


def test_an_output_is_written_whole_with_its_mode(tmp_path):
    p = paths.write_output(tmp_path / "f", "secret\n", "-o", mode=0o600)
    assert p.read_text() == "secret\n" and (p.stat().st_mode & 0o777) == 0o600
    assert [x.name for x in tmp_path.iterdir()] == ["f"]   # no temporary file left


def run(*args, timeout=20, **kw):
    return subprocess.run([KOPS, *args], capture_output=True, text=True, timeout=timeout, **kw)


@reg(reason="kops init -o FIFO --force hung; a 300-character name was a kops bug")
def test_init_refuses_fifos_and_long_names(fifo, tmp_path):
    for target in (str(fifo), str(tmp_path / ("a" * 300 + ".yaml"))):
        p = run("init", "-o", target, "--force")
        assert p.returncode == 2 and "kops bug" not in p.stderr, p.stderr


@reg(reason="kops init -o yes.yaml wrote a name its own loader read as a boolean")
@pytest.mark.parametrize("name", ["yes", "on", "off", "null", "true"])
def test_init_names_that_yaml_reads_otherwise_are_quoted(name, tmp_path):
    p = run("init", "-o", str(tmp_path / f"{name}.yaml"))
    assert p.returncode == 0, p.stderr
    assert inventory.load(tmp_path / f"{name}.yaml").name == name


# -- deadlines, versions, numbers --------------------------------------------------------------------

@reg(reason="--timeout nan|inf|1e309 passed click's FloatRange (a nan deadline never expires)")
@pytest.mark.parametrize("args", [["up", "--timeout", "nan"], ["up", "--timeout", "inf"], ["up", "--timeout", "1e309"],
                                  ["check", "--timeout", "nan"], ["upgrade", "--to", "3.9.2", "--timeout", "nan"],
                                  ["migrate", "--to-kraft", "--timeout", "inf"], ["status", "--wait", "nan"],
                                  ["consume", "t", "--timeout", "nan"], ["topic", "list", "--request-timeout", "nan"]])
def test_every_duration_refuses_nan_and_inf(args):
    p = run(*args)   # the option's type refuses it while the command line is parsed, before any target
    assert p.returncode == 2 and "seconds" in p.stderr, (args, p.stderr)


@reg(reason="kops upgrade --to accepted full-width digits, 03.9.2, 0.0.0 and 11-digit numbers")
@pytest.mark.parametrize("v", ["３.９.２", "٣.٩.٢", "03.9.2", "0.0.0", "2.8.1", "12345678901.1.1", "3.9.2\n", "3.9"])
def test_versions_are_checked_by_one_function(v):
    with pytest.raises(InputError) as exc:
        dist.check_version(v)
    assert exc.value.exit_code == 2
    if v.strip() not in ("3.9.2", "2.8.1"):   # the inventory's field: the same pattern
        assert "kafka.version" in refused(f"kafka: {{version: '{v}'}}\n")


@reg(reason="true became 1 for ports, counts and partitions")
@pytest.mark.parametrize("text", ["brokers: {nodes: true}\n", "brokers: {external_port: true}\n",
                                  "topics: {t: {partitions: true}}\n", "zookeeper: {nodes: false}\n"])
def test_booleans_are_not_numbers(text):
    assert "is a boolean, not a number" in refused(text)


@reg(reason="num.partitions: 3000000000 and log.retention.ms: 1e20 passed")
@pytest.mark.parametrize("key, kind, value", [("num.partitions", "int", 3_000_000_000),
                                              ("log.retention.ms", "long", 10 ** 20),
                                              ("log.retention.ms", "long", 1e20)])
def test_java_ranges(key, kind, value):
    assert configdef.check_value(key, value, {"type": kind, "valid": ""})


@reg(reason="inventory topics could reconfigure __consumer_offsets and Connect's and the registry's topics")
@pytest.mark.parametrize("topic, extra", [("__consumer_offsets", ""), ("__transaction_state", ""),
                                          ("hostile-connect-offsets", "connect: {nodes: 1}\n"),
                                          ("kafkasql-journal", "schema_registry: {}\n")])
def test_internal_topics_need_a_deliberate_flag(topic, extra):
    base = "kafka: {version: 4.4.0}\n" + extra
    assert "keeps this topic for itself" in refused(base + f"topics: {{{topic}: {{partitions: 1}}}}\n")
    assert load(base + f"topics: {{{topic}: {{partitions: 1, internal: true}}}}\n").topics[topic].internal


@reg(reason="connector names . and .. reached the REST path; control characters reached the terminal")
@pytest.mark.parametrize("name", [".", "..", "a\x1b[2Jb", "tab\there", "", "x" * 250])
def test_connector_names(name):
    with pytest.raises(InputError):
        connect._path(name)


@reg(reason="kops client-config '' wrote the admin's credentials")
def test_client_config_refuses_an_empty_user(tmp_path):
    p = run("client-config", "", "--preset", "zk-single-kafka-single", "-o", str(tmp_path / "c"))
    assert p.returncode == 2 and "user name is empty" in p.stderr and not (tmp_path / "c").exists()


@reg(reason="-i /etc/shadow echoed the file's first line in the error")
def test_a_file_that_is_no_inventory_is_not_echoed(tmp_path):
    f = tmp_path / "shadow"
    f.write_text("root:$y$j9T$SECRETHASHVALUE:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    with pytest.raises(SpecError) as exc:
        inventory.load(f)
    text = exc.value.message + "\n".join(exc.value.problems)
    assert "SECRETHASHVALUE" not in text and "is this an inventory?" in text


@reg(reason="kops down --name ../../etc --purge removed a folder above kops's state (found this round)")
@pytest.mark.parametrize("name", ["../../etc", "..", "a/b", "", "UPPER", "x" * 40])
def test_a_cluster_name_from_the_command_line_is_a_name(name, tmp_path):
    victim = tmp_path / "etc"
    victim.mkdir()
    p = run("down", "--name", name, "--purge", env={**os.environ, "KOPS_STATE_DIR": str(tmp_path / "state" / "kops")})
    assert p.returncode == 2 and "is not a cluster name" in p.stderr and victim.is_dir()


def test_forget_never_leaves_the_state_folder(tmp_path, monkeypatch):
    from kops.store import state

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "keep").mkdir()
    with pytest.raises(ValueError):
        state.forget("../../keep")
    assert (tmp_path / "keep").is_dir()
