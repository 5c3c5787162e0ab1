"""ZooKeeper read and changed by kops: znodes through Kafka's own ZooKeeper shell, run in a
ZooKeeper node (the migration's /migration record, a rollback's /controller), and the
brokers' registrations (/brokers/ids, /controller) read straight from ZooKeeper's client
port with kazoo (a session, two reads, closed: a few milliseconds, where a JVM shell would
take seconds; `kops status` uses it)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

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


# -- the brokers' registrations, from ZooKeeper itself ----------------------------------------

class ZkError(Exception):
    """ZooKeeper could not be read (refused, closed, timed out, an error code)."""


@dataclass
class Registrations:
    """What ZooKeeper holds of the brokers: the ids under /brokers/ids, the /controller's
    broker id (None: no znode, no active controller), and where it was read."""

    brokers: list[int]
    controller: int | None
    source: str


def _quiet_logger():
    import logging

    log = logging.getLogger("kops.kazoo")
    log.propagate = False
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    return log


def controller_id(raw: bytes | None) -> int | None:
    """The broker id of a /controller znode ({"version":..,"brokerid":1,...})."""
    if not raw:
        return None
    try:
        return int(json.loads(raw.decode(errors="replace"))["brokerid"])
    except (ValueError, KeyError, TypeError):
        return None


def read_registrations(address: str, timeout: float = 3.0) -> Registrations:
    """/brokers/ids and /controller as ZooKeeper at ``address`` (host:port) holds them (a
    kazoo session: opened, two reads, closed). Raises ZkError when it cannot be read."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException, NoNodeError
    from kazoo.handlers.threading import KazooTimeoutError

    zk = KazooClient(hosts=address, timeout=max(4.0, timeout), logger=_quiet_logger(),
                     connection_retry={"max_tries": 0}, command_retry={"max_tries": 0})
    try:
        zk.start(timeout=timeout)
        try:
            ids = zk.get_children("/brokers/ids")
        except NoNodeError:
            ids = []
        try:
            raw = zk.get("/controller")[0]
        except NoNodeError:
            raw = None
    except KazooTimeoutError as exc:
        raise ZkError(f"no session within {timeout:g} s (not serving: down, or no quorum?)") from exc
    except (KazooException, OSError, ValueError) as exc:
        raise ZkError(f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__) from exc
    finally:
        zk.stop()
        zk.close()
    return Registrations(sorted(int(i) for i in ids or [] if i.isdigit()), controller_id(raw), f"zookeeper {address}")


def registrations(addresses: list[str], timeout: float = 3.0) -> Registrations:
    """The registrations from the first ZooKeeper of ``addresses`` that answers (they are
    one ensemble: a serving member answers with the quorum's data). ZkError naming every
    address tried when none answers."""
    errors = []
    for address in addresses:
        try:
            return read_registrations(address, timeout)
        except ZkError as exc:
            errors.append(f"{address}: {exc}")
    raise ZkError("; ".join(errors) or "no ZooKeeper address")


def registrations_by_shell(provider, topo: Topology) -> Registrations:
    """The same through Kafka's ZooKeeper shell in the first ZooKeeper node (when this
    machine cannot reach the client port). Slower (a JVM). ZkError when it fails."""
    code, out = zk_shell(provider, topo, "ls", "/brokers/ids")
    m = re.findall(r"^\[([0-9, ]*)\]\s*$", out or "", re.M)
    if code != 0 or not m:
        raise ZkError(f"zookeeper-shell ls /brokers/ids exited {code}: {(out or '').strip()[-200:]}")
    ids = sorted(int(x) for x in m[-1].replace(" ", "").split(",") if x)
    code, out = zk_shell(provider, topo, "get", "/controller")
    c = re.search(r'\{"version".*?\}', out or "")
    return Registrations(ids, controller_id(c.group(0).encode()) if c else None,
                         f"zookeeper-shell in {topo.zookeepers[0].name}")
