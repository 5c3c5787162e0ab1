"""ZooKeeper seen through Kafka's own ZooKeeper shell, run in a ZooKeeper node: znodes read
and deleted (the migration's /migration record, a rollback's /controller)."""

from __future__ import annotations

import json
import re

from kops.bundle import render
from kops.core import wait as waiting
from kops.core.errors import NotYet
from kops.model.topology import Topology

ZK_SHELL = "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka"


def zk_shell(provider, topo: Topology, *words: str) -> tuple[int, str]:
    """ZooKeeper's shell (Kafka's own), run in the first ZooKeeper node of ``topo``."""
    zoo = topo.zookeepers[0]
    launch, lay = render.launch_for(topo, zoo), render.layout(topo, zoo)
    argv = [launch.java, "-Xmx64m", "-cp", f"{lay.home}/libs/*", ZK_SHELL, "-server",
            f"{zoo.hostname}:{zoo.ports['client']}", *words]
    return provider.exec(zoo.name, argv)


def migration_znode(provider, topo: Topology) -> dict | None:
    """ZooKeeper's ``/migration`` znode (the KRaft controller's record of the migration)."""
    code, out = zk_shell(provider, topo, "get", "/migration")
    m = re.search(r'\{"version".*?\}', out or "")
    if code != 0 or not m:
        return None
    try:
        return json.loads(m.group(0))
    except ValueError:
        return None


def metadata_migrated(provider, topo: Topology) -> int | None:
    """The KRaft metadata offset of the finished migration, or None while it goes on
    (``kraft_metadata_offset`` stays -1 until the controller has copied everything)."""
    z = migration_znode(provider, topo)
    if z and int(z.get("kraft_metadata_offset", -1)) > 0:
        return int(z["kraft_metadata_offset"])
    return None


@waiting.gate("zk-migration", "the KRaft controller to copy the metadata from ZooKeeper (its /migration znode)")
def _zk_migration(ctx, action):
    """ZooKeeper to KRaft: the active controller has copied the metadata (kops.migrate)."""
    def probe():
        offset = metadata_migrated(ctx.provider, ctx.topo)
        if offset is None:
            raise NotYet("the controller has not finished copying the metadata from ZooKeeper "
                         "(/migration holds no KRaft offset yet)")
        return offset

    return probe, lambda offset, secs: f"metadata migrated in {secs:.1f} s (KRaft metadata offset {offset})"
