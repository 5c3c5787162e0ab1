"""Golden files: every preset rendered with a fixed cluster id, compared file by file.

`make golden` (pytest tests/unit/test_golden.py --update-golden) rewrites tests/golden/.
Beyond equality, a table of facts a Kafka operator would check is asserted directly, so a
golden file regenerated with a bug in it still fails here.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from kops.model import inventory as speclib, topology
from kops.services import registry
from kops.bundle import render
from kops.core.errors import KopsError

CID = "MkU3OEVBNTcwNTJENDM2Qk"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PRESETS = speclib.preset_names()


def _bundle(preset: str) -> dict[str, str]:
    spec = speclib.load(preset=preset)
    return render.export(topology.build(spec, CID))


def _props(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            assert k not in out, f"{k} set twice"
            out[k] = v
    return out


def _files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# -- golden equality -----------------------------------------------------------------

def test_presets_exist():
    assert len(PRESETS) >= 9
    assert {"zk-single-kafka-single", "kraft-single", "kraft-split", "ssh-zk-three-hosts"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_golden(preset, update_golden):
    files = _bundle(preset)
    gdir = GOLDEN / preset
    if update_golden:
        if gdir.exists():
            shutil.rmtree(gdir)
        render.write_export(files, gdir)
        return
    assert gdir.is_dir(), f"no golden files for {preset}: run `make golden`"
    extra = _files_under(gdir) - set(files)
    assert not extra, f"{preset}: golden files no longer rendered: {sorted(extra)} (run `make golden`)"
    missing = set(files) - _files_under(gdir)
    assert not missing, f"{preset}: rendered files without a golden copy: {sorted(missing)} (run `make golden`)"
    for rel, text in sorted(files.items()):
        want = (gdir / rel).read_text()
        assert text == want, f"{preset}/{rel} differs from tests/golden (review, then `make golden`)"


def test_golden_has_no_stale_presets(update_golden):
    if update_golden:
        for d in GOLDEN.iterdir() if GOLDEN.is_dir() else []:
            if d.is_dir() and d.name not in PRESETS:
                shutil.rmtree(d)
        return
    stale = sorted(d.name for d in GOLDEN.iterdir() if d.is_dir() and d.name not in PRESETS)
    assert not stale, f"golden folders for presets that no longer exist: {stale}"


def test_rendering_is_deterministic():
    for preset in PRESETS:
        assert _bundle(preset) == _bundle(preset)


# -- facts, table-driven ---------------------------------------------------------------

# (preset, file, substrings that must be there, substrings that must not)
CONTAINS = [
    ("zk-single-kafka-multiple", "kafka2/server.properties",
     ["advertised.listeners=INTERNAL://kafka2:19093,EXTERNAL://127.0.0.1:9093,"
      "DOCKER://host.docker.internal:29093",
      "listeners=INTERNAL://0.0.0.0:19093,EXTERNAL://0.0.0.0:9093,DOCKER://0.0.0.0:29093",
      "broker.id=2", "zookeeper.connect=zoo1:2181", "offsets.topic.replication.factor=3",
      "transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2",
      "inter.broker.listener.name=INTERNAL",
      "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,DOCKER:PLAINTEXT"],
     ["process.roles", "controller.quorum.voters", "CONTROLLER"]),
    ("zk-single-kafka-single", "kafka1/server.properties",
     ["offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1", "broker.id=1", "zookeeper.connect=zoo1:2181",
      "advertised.listeners=INTERNAL://kafka1:19092,EXTERNAL://127.0.0.1:9092,"
      "DOCKER://host.docker.internal:29092"],
     ["node.id", "process.roles"]),
    ("zk-multiple-kafka-single", "kafka1/server.properties",
     ["zookeeper.connect=zoo1:2181,zoo2:2182,zoo3:2183", "offsets.topic.replication.factor=1"], []),
    ("zk-multiple-kafka-multiple", "kafka3/server.properties",
     ["broker.id=3", "zookeeper.connect=zoo1:2181,zoo2:2182,zoo3:2183",
      "offsets.topic.replication.factor=3", "transaction.state.log.min.isr=2",
      "min.insync.replicas=2", "default.replication.factor=3"], []),
    ("zk-multiple-kafka-multiple", "zoo2/zoo.cfg",
     ["clientPort=2182", "server.1=zoo1:2888:3888", "server.2=zoo2:2888:3888",
      "server.3=zoo3:2888:3888", "dataDir=/var/lib/zookeeper", "quorumListenOnAllIPs=true",
      "4lw.commands.whitelist=ruok,srvr,mntr,stat,conf,isro"], []),
    ("zk-single-kafka-single", "zoo1/zoo.cfg",
     ["clientPort=2181", "dataDir=/var/lib/zookeeper"], ["server.1=", "quorumListenOnAllIPs"]),
    ("kraft-split", "controller1/server.properties",
     ["process.roles=controller\n", "node.id=101",
      "controller.quorum.bootstrap.servers=controller1:19192,controller2:19193,controller3:19194",
      "listeners=CONTROLLER://0.0.0.0:19192", "controller.listener.names=CONTROLLER",
      "listener.security.protocol.map=CONTROLLER:PLAINTEXT"],
     ["inter.broker.listener.name", "INTERNAL", "EXTERNAL", "zookeeper.connect"]),
    ("kraft-split", "kafka2/server.properties",
     ["process.roles=broker\n", "node.id=2",
      "controller.quorum.bootstrap.servers=controller1:19192,controller2:19193,controller3:19194",
      "advertised.listeners=INTERNAL://kafka2:19093,EXTERNAL://127.0.0.1:9093,"
      "DOCKER://host.docker.internal:29093",
      "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,DOCKER:PLAINTEXT,"
      "CONTROLLER:PLAINTEXT", "controller.listener.names=CONTROLLER",
      "offsets.topic.replication.factor=3", "min.insync.replicas=2"],
     ["zookeeper.connect", "broker.id"]),
    ("kraft-single", "kafka1/server.properties",
     ["process.roles=broker,controller", "node.id=1", "controller.quorum.bootstrap.servers=kafka1:19192",
      "listeners=INTERNAL://0.0.0.0:19092,EXTERNAL://0.0.0.0:9092,DOCKER://0.0.0.0:29092,"
      "CONTROLLER://0.0.0.0:19192",
      "offsets.topic.replication.factor=1", "transaction.state.log.min.isr=1"],
     ["zookeeper.connect", "broker.id"]),
    ("kraft-multiple", "kafka3/server.properties",
     ["process.roles=broker,controller", "node.id=3",
      "controller.quorum.bootstrap.servers=kafka1:19192,kafka2:19193,kafka3:19194",
      "listeners=INTERNAL://0.0.0.0:19094,EXTERNAL://0.0.0.0:9094,DOCKER://0.0.0.0:29094,"
      "CONTROLLER://0.0.0.0:19194"], []),
    ("ssh-zk-three-hosts", "kafka2/server.properties",
     ["listeners=INTERNAL://10.0.0.12:19092,EXTERNAL://10.0.0.12:9092", "broker.id=2", "zookeeper.connect=10.0.0.11:2181,10.0.0.12:2181,10.0.0.13:2181",
      "advertised.listeners=INTERNAL://10.0.0.12:19092,EXTERNAL://10.0.0.12:9092",
      "log.dirs=/var/lib/kops/prod/kafka2/data", "offsets.topic.replication.factor=3"],
     ["DOCKER", "host.docker.internal"]),
    ("ssh-zk-three-hosts", "zoo3/zoo.cfg",
     ["clientPortAddress=10.0.0.13", "clientPort=2181", "server.1=10.0.0.11:2888:3888", "server.3=10.0.0.13:2888:3888",
      "dataDir=/var/lib/kops/prod/zoo3"], []),
    ("ssh-kraft-three-hosts", "kafka1/server.properties",
     ["process.roles=broker,controller",
      "controller.quorum.bootstrap.servers=10.0.0.11:19192,10.0.0.12:19192,10.0.0.13:19192",
      "log.dirs=/var/lib/kops/prod-kraft/kafka1/data"], ["DOCKER"]),
]


@pytest.mark.parametrize("preset,rel,present,absent", CONTAINS,
                         ids=[f"{p}:{r}" for p, r, _, _ in CONTAINS])
def test_rendered_facts(preset, rel, present, absent):
    text = _bundle(preset)[rel]
    for s in present:
        assert s in text, f"{preset}/{rel}: expected {s!r}"
    for s in absent:
        assert s not in text, f"{preset}/{rel}: did not expect {s!r}"


def test_a_dynamic_quorums_controller_advertises_only_its_controller_listener():
    text = _bundle("kraft-split")["controller1/server.properties"]
    props = _props(text)
    assert props["advertised.listeners"] == "CONTROLLER://controller1:19192"   # how the voters reach it (KIP-853)
    assert props["controller.quorum.bootstrap.servers"] == "controller1:19192,controller2:19193,controller3:19194"
    assert "controller.quorum.voters" not in props
    assert re.search(r"^listeners=CONTROLLER://", text, re.M)
    assert props["process.roles"] == "controller"


def test_a_static_quorums_controller_has_no_advertised_listeners_line():
    spec = speclib.load(preset="kraft-split")
    topo = topology.build(spec, CID, quorum="static")
    text = render.node_files(topo, topo.node("controller1"))["server.properties"]
    assert not re.search(r"^advertised\.listeners=", text, re.M)
    assert _props(text)["controller.quorum.voters"] == "101@controller1:19192,102@controller2:19193,103@controller3:19194"
    broker = _props(render.node_files(topo, topo.node("kafka1"))["server.properties"])
    assert "CONTROLLER" not in broker["advertised.listeners"] and "controller.quorum.bootstrap.servers" not in broker
    # Kafka 3.9 clusters are static: dynamic quorums come with 4.1
    old = topology.build(spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"version": "3.9.2"})}), CID)
    assert old.quorum == "static"


@pytest.mark.parametrize("preset", [p for p in PRESETS if speclib.load(preset=p).mode == "kraft"])
def test_kraft_brokers_advertise_no_controller_listener_but_their_own(preset):
    for rel, text in _bundle(preset).items():
        if rel.endswith("server.properties"):
            props = _props(text)
            node = rel.split("/")[0]
            ctl = [a for a in props.get("advertised.listeners", "").split(",") if a.startswith("CONTROLLER://")]
            assert all(a.split("//")[1].split(":")[0] in (node, props.get("listeners", "").split("CONTROLLER://")[-1]
                                                          .split(":")[0]) for a in ctl), rel
            assert props["controller.listener.names"] == "CONTROLLER", rel
            assert "zookeeper.connect" not in props, rel


@pytest.mark.parametrize("preset", PRESETS)
def test_replication_defaults_follow_broker_count(preset):
    spec = speclib.load(preset=preset)
    nb = spec.broker_nodes
    for rel, text in _bundle(preset).items():
        if not rel.endswith("server.properties"):
            continue
        props = _props(text)
        if props.get("process.roles") == "controller":
            continue
        assert props["offsets.topic.replication.factor"] == str(min(3, nb)), rel
        assert props["transaction.state.log.replication.factor"] == str(min(3, nb)), rel
        assert props["transaction.state.log.min.isr"] == str(min(2, nb)), rel
        for key in ("min.insync.replicas", "default.replication.factor"):
            if key in props:
                assert int(props[key]) <= nb, f"{rel}: {key}={props[key]} with {nb} brokers"


@pytest.mark.parametrize("preset,count", [("zk-multiple-kafka-multiple", 3),
                                          ("zk-multiple-kafka-single", 3),
                                          ("ssh-zk-three-hosts", 3)])
def test_zookeeper_ensemble_lines(preset, count):
    files = _bundle(preset)
    for i in range(1, count + 1):
        cfg = files[f"zoo{i}/zoo.cfg"]
        assert len(re.findall(r"^server\.\d+=", cfg, re.M)) == count
        assert files[f"zoo{i}/myid"] == f"{i}\n"


def test_myid_single():
    assert _bundle("zk-single-kafka-single")["zoo1/myid"] == "1\n"


@pytest.mark.parametrize("preset,logname", [("zk-single-kafka-single", "log4j.properties"),
                                            ("kraft-single", "log4j2.yaml")])
def test_log_config_matches_version(preset, logname):
    files = _bundle(preset)
    assert f"kafka1/{logname}" in files
    assert f"/etc/kafka/{logname}" in " ".join(yaml.safe_load(files["docker-compose.yml"])
                                               ["services"]["kafka1"]["command"])
    if logname.endswith(".yaml"):
        yaml.safe_load(files[f"kafka1/{logname}"])


# -- compose -----------------------------------------------------------------------------

DOCKER_PRESETS = [p for p in PRESETS if speclib.load(preset=p).driver == "docker"]
SSH_PRESETS = [p for p in PRESETS if speclib.load(preset=p).driver == "ssh"]


@pytest.mark.parametrize("preset", DOCKER_PRESETS)
def test_compose_file(preset):
    spec = speclib.load(preset=preset)
    topo = topology.build(spec, CID)
    files = render.export(topo)
    text = files["docker-compose.yml"]
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    services = doc["services"]
    assert sorted(services) == sorted(n.name for n in topo.nodes)
    assert sorted(doc["volumes"]) == sorted(f"{spec.name}-{n.name}-data" for n in topo.nodes)
    for vname, vol in doc["volumes"].items():
        assert vol["name"] == vname
        assert vol["labels"]["io.kops.cluster"] == spec.name
    host_ports = []
    for n in topo.nodes:
        svc = services[n.name]
        assert svc["image"] == (registry.IMAGE if n.role == "registry" else f"kops/kafka:{spec.kafka.version}")
        assert svc["hostname"] == n.name
        assert svc["container_name"] == f"{spec.name}-{n.name}"
        assert "host.docker.internal:host-gateway" in svc["extra_hosts"]
        assert svc["healthcheck"]["test"][0] == "CMD-SHELL"
        vols = svc["volumes"]
        assert f"./{n.name}:/etc/kafka:ro" in vols
        named = [v for v in vols if not v.startswith("./")]
        assert len(named) == 1 and named[0].split(":")[0] == f"{spec.name}-{n.name}-data"
        # every file the node reads from /etc/kafka is part of the bundle
        assert any(rel.startswith(f"{n.name}/") for rel in files)
        cmd = svc["command"]
        if n.role == "zookeeper" or (spec.mode == "kraft" and n.is_kafka):
            # prestart steps in a fixed script; the JVM's argv passed as positional parameters
            assert cmd[:2] == ["sh", "-c"] and cmd[2].endswith('exec "$$@"') and cmd[3] == "kops-node"
            argv, script = cmd[4:], cmd[2]
        else:
            argv, script = cmd, ""
        assert argv[0] == "java" and f"-Xmx{n.heap}" in argv and ("-cp" in argv or (
            n.role == "registry" and argv[-2:] == ["-jar", f"/opt/registry/{registry.RUNNER}"])), argv
        assert all("$" not in a.replace("$$", "") for a in cmd), "unescaped $ in the command"
        labels = svc["labels"]
        assert labels["io.kops.cluster"] == spec.name
        assert labels["io.kops.node"] == n.name
        assert labels["io.kops.mode"] == spec.mode
        if spec.mode == "kraft" and n.is_kafka:
            assert labels["io.kops.cluster-id"] == CID
            assert f"format -t {CID}" in script and "meta.properties" in script
        else:
            assert "io.kops.cluster-id" not in labels
        if n.role == "zookeeper":
            assert "/bin/cp /etc/kafka/myid /var/lib/zookeeper/myid" in script
            assert argv[-2:] == ["org.apache.zookeeper.server.quorum.QuorumPeerMain", "/etc/kafka/zoo.cfg"]
        elif n.role == "connect":
            # a Connect worker: after the brokers, its argv the distributed worker's, no storage to format
            assert argv[-2:] == ["org.apache.kafka.connect.cli.ConnectDistributed",
                                 "/etc/kafka/connect-distributed.properties"]
            assert sorted(svc["depends_on"]) == sorted(b.name for b in topo.brokers)
            assert "io.kops.cluster-id" not in labels
        elif n.role == "registry":
            # the schema registry: after the brokers, its own application, its properties rendered
            assert f"-Dquarkus.config.locations=file:/etc/kafka/{registry.PROPERTIES}" in argv
            assert sorted(svc["depends_on"]) == sorted(b.name for b in topo.brokers)
        else:
            assert argv[-2:] == ["kafka.Kafka", "/etc/kafka/server.properties"]
            deps = svc.get("depends_on", {})
            assert sorted(deps) == sorted(z.name for z in topo.zookeepers)
            assert all(d["condition"] == "service_healthy" for d in deps.values())
        for p in svc.get("ports", []):
            _ip, hp, cp = p.rsplit(":", 2)
            assert cp == f"{hp}/tcp", p  # published on the same port it listens on
            host_ports.append(int(hp))
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"


def test_compose_publishes_expected_ports():
    doc = yaml.safe_load(_bundle("zk-single-kafka-multiple")["docker-compose.yml"])
    s = doc["services"]
    assert s["zoo1"]["ports"] == ["127.0.0.1:2181:2181/tcp"]  # loopback: clients are advertised there
    # DOCKER on the engine's bridge gateway (where host.docker.internal lands), never on every interface
    assert sorted(s["kafka2"]["ports"]) == ["${KOPS_DOCKER_GATEWAY:-172.17.0.1}:29093:29093/tcp",
                                            "127.0.0.1:9093:9093/tcp"]
    assert "0.0.0.0" not in _bundle("zk-single-kafka-multiple")["docker-compose.yml"]
    doc = yaml.safe_load(_bundle("kraft-split")["docker-compose.yml"])
    assert "ports" not in doc["services"]["controller1"]


# -- ssh: systemd units ------------------------------------------------------------------

@pytest.mark.parametrize("preset", SSH_PRESETS)
def test_ssh_presets_render_systemd_units(preset):
    spec = speclib.load(preset=preset)
    topo = topology.build(spec, CID)
    files = render.export(topo)
    assert "docker-compose.yml" not in files
    for n in topo.nodes:
        rel = f"{n.name}/kops-{spec.name}-{n.name}.service"
        assert rel in files, rel
        unit = files[rel]
        exec_start = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")]
        assert len(exec_start) == 1
        assert f" -cp /opt/kops/kafka_2.13-{spec.kafka.version}/libs/* " in exec_start[0]
        assert exec_start[0].startswith(f"ExecStart=/usr/bin/java -Xmx{n.heap} -Xms{n.heap} ")
        assert "EnvironmentFile" not in unit and "$" not in exec_start[0]
        assert f"TimeoutStopSec={render.stop_grace(topo, n)}" in unit
        assert "User=kafka" in unit
        assert "WantedBy=multi-user.target" in unit
        lay = render.layout(topo, n)
        assert f"StateDirectory={lay.data_dir.removeprefix('/var/lib/')}" in unit
        assert f"LogsDirectory={lay.log_dir.removeprefix('/var/log/')}" in unit
        # KRaft storage is formatted once, as a planned action: never in the unit
        assert "StorageTool" not in unit
        if n.role == "zookeeper":
            assert f"ExecStartPre=/bin/cp {lay.conf_dir}/myid {lay.data_dir}/myid" in unit
        else:
            assert "ExecStartPre" not in unit


def test_ssh_zk_broker_unit_orders_after_local_zookeeper():
    unit = _bundle("ssh-zk-three-hosts")["kafka2/kops-prod-kafka2.service"]
    assert re.search(r"^After=network-online.target kops-prod-zoo2.service$", unit, re.M)


# -- template errors -------------------------------------------------------------------

def test_missing_template_variable_names_the_template():
    with pytest.raises(KopsError) as ei:
        render.render_template("zookeeper/myid.j2")
    assert "zookeeper/myid.j2 line 1" in ei.value.message
    assert "'node' is undefined" in ei.value.message
    assert ei.value.hint and "missing from the render context" in ei.value.hint


def test_missing_template_names_it():
    with pytest.raises(KopsError) as ei:
        render.render_template("nope/missing.j2")
    assert "nope/missing.j2" in ei.value.message
