"""The data commands on a ZooKeeper-mode cluster (Kafka 3.9, plaintext): the other half
of what test_data_commands.py proves on a secure KRaft 4.4 cluster. One short test, its
own cluster (name and ports of its own), purged at the end."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from cleanup import remove_labelled
from test_data_commands import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_zookeeper_mode_inventory_topic_round_trip_and_group(tmp_path, docker_client):
    name = f"t11zk-{uuid.uuid4().hex[:6]}"
    remove_labelled(docker_client, name)
    c = Cluster(tmp_path, name)
    c.inv.write_text(yaml.safe_dump({
        "name": name, "profile": "fast", "kafka": {"version": "3.9.2", "heap": "256m"}, "zookeeper": {"nodes": 1, "heap": "128m"},
        "brokers": {"nodes": 1}, "ports": "auto",
        "topics": {"zk-t": {"partitions": 2, "config": {"max.message.bytes": 200000}}}}))
    try:
        res = json.loads(c.ok("up", "-i", c.inv, "--output", "json").stdout)
        assert [(t["topic"], t["action"]) for t in res["topics"]] == [("zk-t", "create")]
        d = c.describe("zk-t")
        assert len(d["partitions"]) == 2 and d["configs"] == {"max.message.bytes": "200000"}
        lines = [f"k{i % 3}\tv{i}" for i in range(20)]
        c.ok("produce", "zk-t", "-k", "\t", "-H", "mode=zk", "--name", name, input="\n".join(lines) + "\n")
        recs = [json.loads(x) for x in c.ok("consume", "zk-t", "-n", "20", "--output", "json",
                                            "--name", name).stdout.splitlines()]
        assert sorted(f"{r['key']}\t{r['value']}" for r in recs) == sorted(lines)
        assert all(r["headers"] == [["mode", "zk"]] for r in recs)
        c.ok("consume", "zk-t", "-g", "zk-g", "-n", "5", "--name", name)
        g = json.loads(c.ok("group", "describe", "zk-g", "--output", "json", "--name", name).stdout)
        assert g["lag"] == 15 and sum(r["committed"] or 0 for r in g["offsets"]) == 5
        assert json.loads(c.ok("up", "-i", c.inv, "--output", "json").stdout)["changed"] is False
    finally:
        c.kops("down", "-i", c.inv, "--purge")
        remove_labelled(docker_client, name)
