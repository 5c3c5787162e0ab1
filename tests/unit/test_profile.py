"""The fast profile and the class data sharing archives, as rendered data (no engine, no JVM)."""

from __future__ import annotations

import pytest

from kops.artifacts import cds
from kops.bundle import render
from kops.model import topology
from kops.model import inventory as speclib
from kops.core.errors import InputError
from kops.bundle.launch import FAST_OPTS, PERF_OPTS

CID = "MkU3OEVBNTcwNTJENDM2Qk"


def bundle(text: str):
    spec = speclib.loads(text)
    return render.build(topology.build(spec, CID))


def props(nb) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in nb.files[f"{nb.layout.conf_dir}/server.properties"].splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_dev_preset_is_one_fast_kraft_node():
    spec = speclib.load(preset="dev")
    b = render.build(topology.build(spec, CID))
    (nb,) = b
    assert nb.node.role == "combined" and spec.kafka.major >= 4
    assert nb.argv[1:3] == ["-Xmx256m", "-Xms64m"]
    assert all(o in nb.argv for o in FAST_OPTS) and "-XX:+UseG1GC" not in nb.argv
    assert cds.flags("kafka")[0] in nb.argv and cds.flags("kafka")[0] in nb.format_argv
    p = props(nb)
    assert p["offsets.topic.num.partitions"] == ["1"] and p["offsets.topic.replication.factor"] == ["1"]
    assert p["group.initial.rebalance.delay.ms"] == ["0"]


def test_standard_profile_keeps_kafkas_own_jvm_flags():
    (zk, kafka) = bundle("name: std\nkafka: {version: 3.9.2}\n")
    assert all(o in kafka.argv for o in PERF_OPTS) and "-XX:+UseSerialGC" not in kafka.argv
    assert "offsets.topic.num.partitions" not in props(kafka)
    assert cds.flags("zookeeper") == [a for a in zk.argv if a.startswith("-XX:SharedArchiveFile")]


def test_fast_profile_small_heaps_and_explicit_heaps_win():
    b = bundle("name: f\nprofile: fast\nkafka: {version: 3.9.2}\nbrokers: {nodes: 2}\n"
               "nodes: {kafka2: {heap: 400m}}\n")
    heaps = {nb.name: nb.node.heap for nb in b}
    assert heaps == {"zoo1": "128m", "kafka1": "256m", "kafka2": "400m"}
    b = bundle("name: f\nprofile: fast\nkafka: {version: 3.9.2, heap: 1g}\n")
    assert b.nodes["kafka1"].node.heap == "1g"
    b = bundle("name: f\nprofile: fast\nkafka: {version: 4.4.0}\ncontrollers: {nodes: 1}\n")
    assert b.nodes["controller1"].node.heap == "192m"
    # a controller-only node has no broker settings to shrink
    assert "num.io.threads" not in props(b.nodes["controller1"])


def test_inventory_settings_win_over_the_profile_and_appear_once():
    (_, kafka) = bundle("name: f\nprofile: fast\nkafka: {version: 3.9.2, config: {num.io.threads: 8}}\n")
    assert props(kafka)["num.io.threads"] == ["8"]
    assert props(kafka)["num.network.threads"] == ["2"]


def test_archives_only_for_kops_images_on_docker():
    (_, kafka) = bundle("name: own\nkafka: {version: 3.9.2, image: registry:5000/kafka:3.9.2}\n")
    assert not any(a.startswith("-XX:SharedArchiveFile") for a in kafka.argv)
    ssh = bundle("name: s\ndriver: ssh\nkafka: {version: 3.9.2}\n"
                 "hosts: {vm1: {address: 10.0.0.11, roles: [zookeeper, broker]}}\n")
    assert not any(a.startswith("-XX:SharedArchiveFile") for nb in ssh for a in nb.argv)


def test_training_uses_the_nodes_class_path():
    # an archive validates only against the class path it was made with
    nb = next(iter(bundle("name: x\nkafka: {version: 4.4.0}\n")))
    cp = nb.argv[nb.argv.index("-cp") + 1]
    assert f"CP='{cp}'" in cds.TRAIN_SCRIPT and cds.DIR.startswith(nb.layout.home + "/")


@pytest.mark.parametrize("value", ["turbo", "fast; rm -rf /", "", 1, None])
def test_profile_values_are_checked(value):
    import yaml

    with pytest.raises(InputError) as exc:
        speclib.loads(yaml.safe_dump({"name": "p", "profile": value}))
    assert exc.value.exit_code == 2 and "profile" in exc.value.message
