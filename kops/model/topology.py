"""What a spec implies: the nodes, their ids, roles, ports, listeners and quorum.

Pure data, no I/O: the same topology feeds the renderer, the planner, both providers,
the gates and the status. Naming follows the seed compose files: ``zoo1..``,
``kafka1..`` and, for dedicated KRaft controllers, ``controller1..`` (node ids 101..).

:func:`build` checks what only the derived nodes show (unique ids, ports that fit and do
not clash on a host) and raises :class:`~kops.spec.SpecError` (exit 2) on any problem, so
a library caller can never get a topology that the CLI would refuse.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

import difflib

from kops.model.spec import ClusterSpec, SpecError

CONTROLLER_ID_BASE = 100


def new_cluster_id() -> str:
    """16 random bytes, unpadded base64url, never starting with '-' (like StorageTool)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


@dataclass
class Node:
    name: str                 # zoo1, kafka1, controller1
    role: str                 # zookeeper | broker | controller | combined
    index: int                # 1-based within its kind
    id: int                   # myid for ZooKeeper, broker.id / node.id for Kafka
    hostname: str             # how peers on the cluster network reach it
    host_key: str             # "docker" (one engine) or the SSH host's name
    heap: str
    ports: dict[str, int] = field(default_factory=dict)
    config: dict = field(default_factory=dict)    # per-node overrides (already merged)
    host: dict | None = None  # the SSH host's spec (address, user, ...)

    @property
    def host_address(self) -> str:
        """The machine this node runs on, as an address (one Docker engine: "docker")."""
        return str(self.host["address"]).lower() if self.host else self.host_key

    @property
    def is_kafka(self) -> bool:
        """A Kafka server (broker, controller or both); not ZooKeeper, not a Connect worker."""
        return self.role in ("broker", "controller", "combined")

    @property
    def is_broker(self) -> bool:
        return self.role in ("broker", "combined")

    @property
    def is_controller(self) -> bool:
        return self.role in ("controller", "combined")

    @property
    def process_roles(self) -> str:
        return {"broker": "broker", "controller": "controller", "combined": "broker,controller"}.get(self.role, "")

    def bound_ports(self, driver: str) -> dict[str, int]:
        """Ports this node takes on its host: published ports (docker) or listened ports (ssh)."""
        if driver == "docker":
            keep = PUBLISHED
            return {k: v for k, v in self.ports.items() if k in keep}
        return {k: v for k, v in self.ports.items() if k != "docker"}


@dataclass
class Topology:
    spec: ClusterSpec
    cluster_id: str
    nodes: list[Node]
    # KRaft: "dynamic" (KIP-853: controller.quorum.bootstrap.servers, voters changed at run
    # time; new clusters of Kafka 4.1+) or "static" (controller.quorum.voters); "" without KRaft
    quorum: str = ""
    # a ZooKeeper-to-KRaft migration under way (kops.migrate): node -> the settings of its
    # phase (written in their own section of server.properties), and the brokers rolled
    # back to ZooKeeper mode whose metadata log goes before they start
    migration: dict[str, dict] = field(default_factory=dict)
    drop_metadata_log: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mode(self) -> str:
        return self.spec.mode

    @property
    def version(self) -> str:
        return self.spec.kafka.version

    @property
    def driver(self) -> str:
        return self.spec.driver

    def of(self, *roles: str) -> list[Node]:
        return [n for n in self.nodes if n.role in roles]

    @property
    def zookeepers(self) -> list[Node]:
        return self.of("zookeeper")

    @property
    def brokers(self) -> list[Node]:
        return self.of("broker", "combined")

    @property
    def controllers(self) -> list[Node]:
        return self.of("controller", "combined")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def zookeeper_connect(self) -> str:
        return ",".join(f"{z.hostname}:{z.ports['client']}" for z in self.zookeepers)

    @property
    def controller_bootstrap(self) -> str:
        """controller.quorum.bootstrap.servers of a dynamic quorum: every controller of the inventory."""
        return ",".join(f"{c.hostname}:{c.ports['controller']}" for c in self.controllers)

    def initial_controllers(self) -> str:
        """``--initial-controllers`` of a new dynamic quorum: id@host:port:directory-id of each."""
        return ",".join(f"{c.id}@{c.hostname}:{c.ports['controller']}:{directory_id(self.cluster_id, c.name)}"
                        for c in self.controllers)

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{c.id}@{c.hostname}:{c.ports['controller']}" for c in self.controllers)

    def external_address(self, n: Node) -> str:
        return f"{self.advertised_host(n)}:{n.ports['external']}"

    def advertised_host(self, n: Node) -> str:
        if self.driver == "docker":
            return self.spec.brokers.advertised_host
        return n.hostname

    def addresses(self, n: Node) -> dict[str, str]:
        """How clients reach a node: on the host, on the cluster network, from other containers."""
        if n.role == "zookeeper":
            host = self.spec.brokers.advertised_host if self.driver == "docker" else n.hostname
            out = {"host": f"{host}:{n.ports['client']}"}
            if self.driver == "docker":
                out["network"] = f"{n.hostname}:{n.ports['client']}"
            return self._with_metrics(n, out)
        if n.role in ("connect", "registry"):
            out = {"host": self.rest_address(n)}
            if self.driver == "docker":
                out["network"] = f"{n.hostname}:{n.ports['rest']}"
            return self._with_metrics(n, out)
        if not n.is_broker:
            return self._with_metrics(n, {})
        out = {"host": self.external_address(n), "network": f"{n.hostname}:{n.ports['internal']}"}
        if self.driver == "docker":
            out["containers"] = f"host.docker.internal:{n.ports['docker']}"
        if "jmx" in n.ports:
            out["jmx"] = (f"{self.publish_host()}:{n.ports['jmx']}" if self.driver == "docker"
                          else f"127.0.0.1:{n.ports['jmx']} on {n.host_key}")
        return self._with_metrics(n, out)

    @property
    def connects(self) -> list[Node]:
        return self.of("connect")

    @property
    def registries(self) -> list[Node]:
        return self.of("registry")

    def rest_address(self, n: Node) -> str:
        """A Connect worker's or registry node's REST API as this machine reaches it (host:port)."""
        host = self.publish_host() if self.driver == "docker" else self.bind_host(n)
        if host == "0.0.0.0":
            host = "127.0.0.1" if self.driver == "docker" else n.hostname
        return f"{host}:{n.ports['rest']}"

    def metrics_address(self, n: Node) -> str | None:
        """Where the node's Prometheus endpoint is reached from this machine (host:port)."""
        if "metrics" not in n.ports:
            return None
        host = self.publish_host() if self.driver == "docker" else self.bind_host(n)
        if host == "0.0.0.0":
            host = "127.0.0.1" if self.driver == "docker" else n.hostname
        return f"{host}:{n.ports['metrics']}"

    def _with_metrics(self, n: Node, out: dict[str, str]) -> dict[str, str]:
        if "metrics" in n.ports:
            out["metrics"] = self.metrics_address(n)
        return out

    @property
    def bootstrap_servers(self) -> str:
        """For clients on the host (EXTERNAL)."""
        return ",".join(self.external_address(b) for b in self.brokers)

    @property
    def internal_bootstrap(self) -> str:
        """For clients on the cluster network (INTERNAL)."""
        return ",".join(f"{b.hostname}:{b.ports['internal']}" for b in self.brokers)

    def bind_host(self, n: Node) -> str:
        """Where a node's listeners bind on its machine. In a container: every interface of
        the container (the engine's published ports decide what the host exposes). On a
        host: its own address (brokers.bind_address when the inventory asks for another,
        0.0.0.0 included), never all interfaces by default."""
        if self.driver == "docker":
            return "0.0.0.0"
        return self.spec.brokers.bind_address or n.hostname

    def publish_host(self) -> str:
        """Docker: the host address the clients' ports are published on (EXTERNAL, ZooKeeper,
        JMX): loopback for a cluster advertised there, else brokers.bind_address, else the
        advertised address itself."""
        b = self.spec.brokers
        if b.bind_address:
            return b.bind_address
        return "127.0.0.1" if b.advertised_host in ("127.0.0.1", "localhost") else b.advertised_host

    def tls_names(self, n: Node) -> list[str]:
        """Every name and address a node is reached by (its certificate's SANs)."""
        names = {n.hostname, n.name, "localhost", "127.0.0.1"}
        if self.driver == "docker":
            names |= {self.spec.brokers.advertised_host, self.publish_host(), "host.docker.internal"}
        else:
            names.add(n.host_key)
        names.discard("0.0.0.0")
        return sorted(names)

    def listeners(self, n: Node) -> dict[str, tuple[str, str]]:
        """Listener name -> (bind address, advertised address or '' when not advertised)."""
        out: dict[str, tuple[str, str]] = {}
        bind = self.bind_host(n)
        if n.is_broker:
            out["INTERNAL"] = (f"{bind}:{n.ports['internal']}", f"{n.hostname}:{n.ports['internal']}")
            out["EXTERNAL"] = (f"{bind}:{n.ports['external']}", self.external_address(n))
            if self.driver == "docker":
                out["DOCKER"] = (f"{bind}:{n.ports['docker']}", f"host.docker.internal:{n.ports['docker']}")
        if n.is_controller:
            # a dynamic quorum's voters are reached on the address each controller advertises (KIP-853)
            out["CONTROLLER"] = (f"{bind}:{n.ports['controller']}",
                                 f"{n.hostname}:{n.ports['controller']}" if self.quorum == "dynamic" else "")
        return out

    @property
    def profile_defaults(self) -> dict[str, int]:
        """Broker settings of the fast profile (the inventory's own settings win)."""
        if self.spec.profile != "fast":
            return {}
        return dict(FAST_BROKER_CONFIG)

    @property
    def replication_defaults(self) -> dict[str, int]:
        nb = len(self.brokers)
        return {"offsets.topic.replication.factor": min(3, nb),
                "transaction.state.log.replication.factor": min(3, nb),
                "transaction.state.log.min.isr": min(2, nb)}


def _placement(spec: ClusterSpec, role: str, count: int) -> list[tuple[str, dict | None]]:
    if spec.driver != "ssh":
        return [("docker", None)] * count
    hosts = [(name, h) for name, h in spec.hosts.items() if role in h.roles]
    hosts = hosts or [("(none)", None)]
    return [(hosts[i % len(hosts)][0], hosts[i % len(hosts)][1].model_dump() if hosts[i % len(hosts)][1] else None)
            for i in range(count)]


PLACEHOLDER_ID = "AAAAAAAAAAAAAAAAAAAAAA"
FAST_HEAP = {"zookeeper": "128m", "controller": "192m", "broker": "256m"}
# keys that exist in every Kafka version kops supports (3.x and 4.x)
FAST_BROKER_CONFIG = {
    "offsets.topic.num.partitions": 1, "transaction.state.log.num.partitions": 1,
    "num.network.threads": 2, "num.io.threads": 2, "background.threads": 2,
    "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
}
ROLE_ORDER = {"zookeeper": 0, "controller": 1, "combined": 2, "broker": 2, "connect": 3, "registry": 4}


PUBLISHED = ("client", "external", "docker", "jmx", "metrics", "rest")   # the ports a Docker node publishes on the host


DYNAMIC_QUORUM_SINCE = (4, 1)   # new KRaft clusters get a dynamic quorum from this version on


def default_quorum(spec: ClusterSpec) -> str:
    """The quorum a new cluster gets: dynamic on Kafka 4.1+ (KIP-853), else static."""
    if spec.mode != "kraft":
        return ""
    major, minor = (int(x) for x in spec.kafka.version.split(".")[:2])
    return "dynamic" if (major, minor) >= DYNAMIC_QUORUM_SINCE else "static"


def directory_id(cluster_id: str, node: str) -> str:
    """A controller's metadata directory id (a Kafka Uuid, base64url of 16 bytes), fixed by
    the cluster and node, for ``--initial-controllers``; never one of Kafka's reserved ids."""
    raw = uuid.uuid5(uuid.NAMESPACE_URL, f"kops:{cluster_id}:{node}").bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def build(spec: ClusterSpec, cluster_id: str, published: dict[str, dict[str, int]] | None = None,
          quorum: str | None = None) -> Topology:
    """The topology of a spec; raises SpecError when its nodes do not fit together.
    ``published`` (``ports: auto``): node -> the host ports picked for it, which replace
    the spec's ranges (the node listens on them too, so the advertised address is true).
    ``quorum``: the KRaft quorum the cluster already has (default: a new cluster's)."""
    topo = _assemble(spec, cluster_id)
    topo.quorum = (quorum or default_quorum(spec)) if spec.mode == "kraft" else ""
    for n in topo.nodes:
        for kind, port in (published or {}).get(n.name, {}).items():
            if kind in n.ports and kind in PUBLISHED:
                n.ports[kind] = port
    found = check(topo)
    if found:
        raise SpecError(f"cluster {spec.name}", found)
    return topo


def problems(spec: ClusterSpec) -> list[str]:
    """What :func:`build` would refuse, as a list (for reporting with the spec's own rules)."""
    return check(_assemble(spec, PLACEHOLDER_ID))


def check(topo: Topology) -> list[str]:
    spec, p = topo.spec, []
    names = {n.name for n in topo.nodes}
    for name in spec.nodes:
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            p.append(f"nodes.{name}: no such node" + (f" (did you mean {close[0]}?)" if close else "")
                     + f"; nodes of this cluster: {', '.join(sorted(names))}")
    for group, kinds in (("kafka", ("broker", "combined", "controller")), ("zookeeper", ("zookeeper",))):
        seen: dict[int, str] = {}
        for n in topo.of(*kinds):
            if n.id in seen:
                mine, other = (seen[n.id], n.name) if seen[n.id] in spec.nodes else (n.name, seen[n.id])
                p.append(f"nodes.{mine}.id: {n.id} is also the id of {other}; {group} node ids must be unique")
            seen.setdefault(n.id, n.name)
    for n in topo.zookeepers:
        if not 1 <= n.id <= 255:
            p.append(f"nodes.{n.name}.id: {n.id}: a ZooKeeper myid is 1..255")
    for n in topo.nodes:
        own: dict[int, str] = {}
        for pname, port in n.ports.items():
            if port > 65535:
                p.append(f"port {port}: {n.name} ({pname}) would need it, above 65535; lower the "
                         f"*_port settings so that every node's port fits")
            if port in own:
                p.append(f"port {port}: {n.name} would listen on it twice ({own[port]} and {pname}); "
                         "give the *_port settings distinct ranges")
            own.setdefault(port, pname)
    ports: dict[tuple[str, int], str] = {}
    for n in topo.nodes:
        for pname, port in n.bound_ports(spec.driver).items():
            key = (n.host_address, port)
            if key in ports and ports[key] != f"{n.name} ({pname})":
                where = "the Docker engine's host" if spec.driver == "docker" else f"host {n.host_key}"
                p.append(f"port {port}: {n.name} ({pname}) and {ports[key]} both need it on {where}; "
                         "change one of the *_port settings")
            ports.setdefault(key, f"{n.name} ({pname})")
    return p


def _assemble(spec: ClusterSpec, cluster_id: str) -> Topology:
    nodes: list[Node] = []
    zk, br, ct = spec.zk, spec.brokers, spec.ctl

    fast = spec.profile == "fast"

    def heap_of(kind: str, section, given: str | None) -> str:
        """An explicit heap wins; the fast profile's small ones replace the defaults only."""
        if fast and given is None and (section is None or "heap" not in section.model_fields_set):
            return FAST_HEAP[kind]
        return given or (section.heap if section is not None else None)

    def mk(name, role, index, nid, host, heap, ports, cfg_layers):
        host_key, host_spec = host
        ov = spec.nodes.get(name)
        merged: dict = {}
        for layer in cfg_layers:
            merged.update(layer)
        if ov:
            merged.update(ov.config)
            nid = ov.id if ov.id is not None else nid
            heap = ov.heap or heap
        hostname = host_spec["address"] if host_spec else name
        return Node(name, role, index, nid, hostname, host_key, heap, ports, merged, host_spec)

    seen: dict[tuple[str, str], int] = {}

    def off(kind: str, i: int, host) -> int:
        """Port offset: the node's index on Docker (one engine); per host over SSH, so the
        first broker on every host gets 9092 as operators expect."""
        if spec.driver != "ssh":
            return i - 1
        key = (kind, host[0])
        seen[key] = seen.get(key, -1) + 1
        return seen[key]

    for i, host in enumerate(_placement(spec, "zookeeper", spec.zk_nodes), 1):
        o = off("zk", i, host)
        nodes.append(mk(f"zoo{i}", "zookeeper", i, i, host, heap_of("zookeeper", spec.zookeeper, None) or zk.heap,
                        {"client": zk.client_port + o,
                         "peer": zk.peer_port + (o if spec.driver == "ssh" else 0),
                         "election": zk.election_port + (o if spec.driver == "ssh" else 0)},
                        [zk.config]))
    for i, host in enumerate(_placement(spec, "controller", spec.controller_nodes), 1):
        nodes.append(mk(f"controller{i}", "controller", i, CONTROLLER_ID_BASE + i, host,
                        heap_of("controller", spec.controllers, None) or ct.heap,
                        {"controller": ct.port + off("ctl", i, host)}, [spec.kafka.config, ct.config]))
    combined = spec.mode == "kraft" and not spec.controller_nodes
    for i, host in enumerate(_placement(spec, "broker", spec.broker_nodes), 1):
        o = off("broker", i, host)
        ports = {"internal": br.internal_port + o, "external": br.external_port + o,
                 "docker": br.docker_port + o}
        if combined:
            ports["controller"] = br.controller_port + off("ctl", i, host)
        if br.jmx_port:
            ports["jmx"] = br.jmx_port + o
        nodes.append(mk(f"kafka{i}", "combined" if combined else "broker", i, i, host,
                        heap_of("broker", spec.kafka, br.heap) or spec.kafka.heap, ports,
                        [spec.kafka.config, br.config]))
    if spec.connect:
        cn = spec.connect
        for i, host in enumerate(_placement(spec, "connect", cn.nodes), 1):
            nodes.append(mk(f"connect{i}", "connect", i, i, host, cn.heap,
                            {"rest": cn.rest_port + off("connect", i, host)}, [cn.config]))
    if spec.schema_registry:
        sr = spec.schema_registry
        for i, host in enumerate(_placement(spec, "registry", sr.nodes), 1):
            nodes.append(mk(f"registry{i}", "registry", i, i, host, sr.heap,
                            {"rest": sr.port + off("registry", i, host)}, [sr.config]))
    if spec.metrics.prometheus:
        for n in nodes:
            if n.role == "registry":
                continue
            n.ports["metrics"] = spec.metrics.port + off("metrics", 0, (n.host_key, None)) \
                if spec.driver == "ssh" else spec.metrics.port + nodes.index(n)
    return Topology(spec, cluster_id, nodes)
