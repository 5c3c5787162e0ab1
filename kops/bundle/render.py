"""The bundle: every node's rendered files and service definition, the one source of truth.

Templates live under ``templates/`` and render with ``StrictUndefined``: a missing value
is an error naming the template and its line, never an empty string in a config. What a
node needs (its files, where they go, its command line, its stop grace period, its
container or systemd unit) is computed here once; the planner compares it with what a
provider observes, and the providers copy it. No provider builds a path, a config line or
a command line of its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jinja2

from kops.services import connect, metrics, registry
from kops.core import paths
from kops.core.errors import InputError, KopsError
from kops.bundle.launch import CONNECT_PROPERTIES, Launch, container_command, log_config_name, systemd_line
from kops.model.spec import CONNECT_USER, REGISTRY_USER
from kops.model.topology import Node, Topology

LABEL = "io.kops"
GATEWAY = "gateway"   # a published port bound on the engine's bridge gateway (resolved by the provider)
COMPOSE_GATEWAY = "${KOPS_DOCKER_GATEWAY:-172.17.0.1}"   # Docker's default bridge gateway
KAFKA_USER = "kafka"

# Seconds a node gets to stop before SIGKILL. A ZooKeeper-mode broker's controlled
# shutdown moves leadership away (can take a while); a KRaft node's needs the controller
# quorum, which is gone when a whole cluster stops, so it would only wait in vain.
STOP_GRACE = {"zookeeper": 30, "kafka-zookeeper-mode": 120, "kafka-kraft": 40}


@dataclass(frozen=True)
class Layout:
    """Where a node's files live on its machine (container or host)."""

    home: str
    conf_dir: str
    data_dir: str
    log_dir: str


@dataclass(frozen=True)
class NodeBundle:
    """Everything one node needs, as data."""

    node: Node
    layout: Layout
    files: dict[str, str]            # absolute path on the node's machine -> content
    argv: list[str]                  # the service's command line (no shell)
    prestart: list[list[str]]        # run before every start (myid)
    format_argv: list[str] | None    # KRaft: formats storage once (planned as its own action)
    stop_grace: int
    unit: str | None = None          # SSH: systemd unit name (its file is in ``files``)
    container: dict | None = None    # Docker: name, image, ports, labels, volume, ...
    sums: dict[str, str] = field(default_factory=dict)   # path -> sha256 of the content
    digest: str = ""                 # the whole definition: files, argv, image, ports
    secret: frozenset[str] = frozenset()   # paths readable by the service user only
    scram_argv: list[str] | None = None    # ZooKeeper mode + SASL: writes the brokers' SCRAM user
    env: dict[str, str] = field(default_factory=dict)   # the node's environment (`kops exec`, Kafka's tools)
    join_format_argv: list[str] | None = None   # a dynamic quorum: a controller joining a running quorum

    @property
    def name(self) -> str:
        return self.node.name

    def changed_files(self, observed: dict[str, str]) -> list[str]:
        """Paths whose observed sha256 differs from the rendered one."""
        return [p for p, s in self.sums.items() if observed.get(p) != s]


@dataclass(frozen=True)
class Credentials:
    """What a secure cluster's nodes get from kops's secrets (see kops.secrets)."""

    ca_pem: str
    nodes: dict[str, tuple[str, str]]     # node -> (key PEM, certificate PEM)
    admin_password: str
    mechanism: str | None                 # SCRAM-SHA-512 / SCRAM-SHA-256, None: TLS only
    users: dict[str, str] = field(default_factory=dict)   # kops's services' own SCRAM users -> password


ADMIN = "kops-admin"
SERVICE_USERS = {"connect": CONNECT_USER, "registry": REGISTRY_USER}   # role -> its SCRAM user


def service_users(spec) -> list[str]:
    """The SCRAM users kops makes for its services on a SASL cluster: the Connect workers'
    and the schema registry's own (never kops-admin: a worker runs the users' connectors)."""
    if not spec.security.sasl:
        return []
    return ([CONNECT_USER] if spec.connect is not None else []) + \
        ([REGISTRY_USER] if spec.schema_registry is not None else [])


@dataclass(frozen=True)
class Bundle:
    topo: Topology
    nodes: dict[str, NodeBundle]

    def __iter__(self):
        return iter(self.nodes.values())

    @property
    def driver(self) -> str:
        return self.topo.driver


def layout(topo: Topology, node: Node) -> Layout:
    if node.role == "registry":   # its own application (kops.registry); no data of its own (it lives in Kafka)
        if topo.driver == "docker":
            return Layout("/opt/registry", "/etc/kafka", "/var/lib/kafka/data", "/var/log/kafka")
        base = f"{topo.name}/{node.name}"
        return Layout(f"/opt/kops/{registry.HOME_NAME}", f"/etc/kops/{base}", f"/var/lib/kops/{base}/data",
                      f"/var/log/kops/{base}")
    if topo.driver == "docker":
        data = "/var/lib/zookeeper" if node.role == "zookeeper" else "/var/lib/kafka/data"
        return Layout("/opt/kafka", "/etc/kafka", data, "/var/log/kafka")
    base = f"{topo.name}/{node.name}"
    return Layout(f"/opt/kops/kafka_2.13-{topo.version}", f"/etc/kops/{base}",
                  f"/var/lib/kops/{base}" + ("" if node.role == "zookeeper" else "/data"),
                  f"/var/log/kops/{base}")


def kafka_home(topo: Topology) -> str:
    """Where the Kafka distribution is on a node (the registry's application is elsewhere)."""
    return "/opt/kafka" if topo.driver == "docker" else f"/opt/kops/kafka_2.13-{topo.version}"


def launch_for(topo: Topology, node: Node) -> Launch:
    lay = layout(topo, node)
    java = "java" if topo.driver == "docker" else "/usr/bin/java"
    jmx = node.ports.get("jmx")
    # JMX has no authentication here, so it is never exposed: on a host it listens on
    # loopback (reach it through an SSH tunnel); a container's is published on the
    # publish address. It hands out an RMI address: the one clients reach.
    ssh = topo.driver == "ssh"
    agent = None
    if "metrics" in node.ports:
        # the exporter listens like the node's other listeners: every interface of a
        # container (published on the publish address), the host's own address over SSH
        agent = metrics.agent_flag(lay.home, topo.bind_host(node), node.ports["metrics"],
                                   f"{lay.conf_dir}/{metrics.RULES_FILE}")
    # the class data sharing archives exist only in kops's own images (kops.cds)
    cds = topo.driver == "docker" and topo.spec.kafka.image is None and node.role not in ("connect", "registry")
    return Launch(topo.version, home=lay.home, conf_dir=lay.conf_dir, log_dir=lay.log_dir,
                  data_dir=lay.data_dir, heap=node.heap, java=java, jmx_port=jmx,
                  cds=cds, fast=topo.spec.profile == "fast",
                  jmx_host=("127.0.0.1" if ssh else topo.publish_host()) if jmx else None,
                  jmx_bind="127.0.0.1" if ssh and jmx else None, java_agent=agent,
                  drop_metadata_log=node.name in topo.drop_metadata_log)


def launch_role(node: Node) -> str:
    """What kops.launch starts on a node: zookeeper, kafka (brokers and controllers), connect or registry."""
    return node.role if node.role in ("zookeeper", "connect", "registry") else "kafka"


def stop_grace(topo: Topology, node: Node) -> int:
    if node.role in ("zookeeper", "connect", "registry"):   # a Connect worker stops its tasks within 30 s
        return STOP_GRACE["zookeeper"]
    return STOP_GRACE["kafka-kraft" if topo.mode == "kraft" else "kafka-zookeeper-mode"]


# -- templates ----------------------------------------------------------------------------

_PROP_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def _propvalue(v) -> str:
    """A value as java.util.Properties reads it back: escapes, never a second line."""
    if isinstance(v, bool):
        return "true" if v else "false"
    text = str(v)
    # java.util.Properties reads ISO-8859-1: anything beyond ASCII goes as \uXXXX
    out = "".join(_PROP_ESCAPES.get(c) or (c if 32 <= ord(c) < 127 else
                                          "".join(f"\\u{u:04x}" for u in _utf16(c))) for c in text)
    return ("\\" + out) if out.startswith(" ") else out


def _utf16(c: str) -> list[int]:
    raw = c.encode("utf-16-be")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def _propkey(k) -> str:
    text = str(k)
    if not text or any(c in text for c in " =:#!\\\n\r\t\f"):
        raise InputError(f"config key {text!r} cannot be written to a properties file",
                         hint="keys are letters, digits, '.', '_' and '-'")
    return text


def _compose_escape(argv: list[str]) -> list[str]:
    return [a.replace("$", "$$") for a in argv]


@lru_cache(maxsize=1)
def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    e.filters["propvalue"] = _propvalue
    e.filters["propkey"] = _propkey
    e.filters["join_listener"] = lambda item: f"{item[0]}://{item[1]}"
    e.filters["compose_escape"] = _compose_escape
    e.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    e.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    return e


def render_template(name: str, **ctx) -> str:
    try:
        return env().get_template(name).render(**ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise KopsError(f"template {exc.name or name} line {exc.lineno}: {exc.message}",
                        hint="fix the template under templates/") from exc
    except jinja2.TemplateNotFound as exc:
        raise KopsError(f"template {exc.name} not found under {paths.templates_dir()}") from exc
    except jinja2.UndefinedError as exc:
        raise KopsError(f"template {name}{_template_line(exc, name)}: {exc.message}",
                        hint="a value the template needs is missing from the render context") from exc


def _template_line(exc: BaseException, name: str) -> str:
    tb, lineno = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" line {lineno}" if lineno else ""


def default_log_config(version: str) -> tuple[str, str]:
    name = log_config_name(version)
    return name, render_template(f"log/{name}.j2", version=version)


# -- per node -----------------------------------------------------------------------------

def _security(topo: Topology, node: Node, lay: Layout, creds: Credentials | None) -> tuple[dict, list]:
    """(listener -> protocol, the security settings) of a node."""
    sec = topo.spec.security
    names = list(topo.listeners(node))
    if topo.mode == "kraft" and "CONTROLLER" not in names:
        names.append("CONTROLLER")   # brokers reach the controllers through it
    if not sec.tls:
        return {n: "PLAINTEXT" for n in names}, []
    if creds is None:
        raise KopsError("a secure cluster is rendered without its credentials (kops.secrets)")
    client = "SASL_SSL" if sec.sasl else "SSL"
    protocols = {n: ("SSL" if n == "CONTROLLER" else client) for n in names}
    items = [("ssl.keystore.type", "PEM"), ("ssl.keystore.location", f"{lay.conf_dir}/tls/node.pem"),
             ("ssl.truststore.type", "PEM"), ("ssl.truststore.location", f"{lay.conf_dir}/tls/ca.pem"),
             ("ssl.endpoint.identification.algorithm", "https"), ("ssl.client.auth", "none")]
    if sec.sasl:
        mech = sec.mechanism
        login = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        items += [("sasl.enabled.mechanisms", mech), ("sasl.mechanism.inter.broker.protocol", mech)]
        for n in names:
            if protocols[n] == "SASL_SSL":
                creds_part = (f' username="{ADMIN}" password="{creds.admin_password}"' if n == "INTERNAL" else "")
                items.append((f"listener.name.{n.lower()}.{mech.lower()}.sasl.jaas.config", f"{login}{creds_part};"))
        if sec.authorizer:
            items += _authorizer(topo, protocols)
        else:
            items.append(("super.users", f"User:{ADMIN}"))
    return protocols, items


NODE_PRINCIPAL = "kops-node"   # what a node's certificate (CN=<node>, the cluster CA's) is to the authorizer


def _authorizer(topo: Topology, protocols: dict) -> list[tuple[str, str]]:
    """Kafka's own authorizer (security.acls / security.authorization): nothing is allowed
    that no ACL allows, except to the super users: kops-admin (kops itself and the brokers
    between them), the services' own users, and in KRaft the nodes on the CONTROLLER
    listener, which then asks for their certificates (mTLS: the brokers' and controllers'
    requests to the quorum; every certificate of the cluster CA maps to kops-node)."""
    kraft = topo.mode == "kraft"
    cls = ("org.apache.kafka.metadata.authorizer.StandardAuthorizer" if kraft
           else "kafka.security.authorizer.AclAuthorizer")
    supers = [ADMIN, *service_users(topo.spec)] + ([NODE_PRINCIPAL] if kraft else [])
    items = [("authorizer.class.name", cls), ("allow.everyone.if.no.acl.found", "false"),
             ("super.users", ";".join(f"User:{u}" for u in supers))]
    if kraft and protocols.get("CONTROLLER") == "SSL":
        items += [("listener.name.controller.ssl.client.auth", "required"),
                  ("ssl.principal.mapping.rules", f"RULE:^CN=[a-z][a-z0-9-]*$/{NODE_PRINCIPAL}/,DEFAULT")]
    return items


def _server_properties(topo: Topology, node: Node, lay: Layout, creds: Credentials | None = None) -> str:
    listeners = topo.listeners(node)
    protocols, security = _security(topo, node, lay, creds)
    protocol_map = ",".join(f"{name}:{proto}" for name, proto in protocols.items())
    return render_template(
        "kafka/server.properties.j2", cluster=topo.name, node=node, version=topo.version,
        mode=topo.mode, zookeeper_connect=topo.zookeeper_connect, quorum_voters=topo.quorum_voters,
        quorum=topo.quorum, controller_bootstrap=topo.controller_bootstrap,
        listeners=[(name, bind) for name, (bind, _) in listeners.items()],
        advertised=[f"{name}://{adv}" for name, (_, adv) in listeners.items() if adv],
        protocol_map=protocol_map, data_dir=lay.data_dir, replication=topo.replication_defaults,
        profile=topo.profile_defaults if node.is_broker else {},
        overrides=node.config, security=security, migration=topo.migration.get(node.name, {}))


def node_files(topo: Topology, node: Node, creds: Credentials | None = None) -> dict[str, str]:
    """File name -> content: everything this node needs in its config folder."""
    lay = layout(topo, node)
    files: dict[str, str] = {}
    if node.role == "zookeeper":
        files["zoo.cfg"] = render_template(
            "zookeeper/zoo.cfg.j2", cluster=topo.name, node=node, data_dir=lay.data_dir,
            zookeepers=topo.zookeepers, overrides=node.config,
            client_bind=topo.bind_host(node) if topo.driver == "ssh" else "")
        files["myid"] = render_template("zookeeper/myid.j2", node=node)
    elif node.role == "connect":
        files.update(connect.node_files(topo, node, lay, service_client(topo, node, lay, creds)))
        if creds is not None:
            files["tls/ca.pem"] = creds.ca_pem
    elif node.role == "registry":
        # logs to its console (the node's log), no log4j
        files = registry.node_files(topo, node, service_client(topo, node, lay, creds))
        if creds is not None:
            files["tls/ca.pem"] = creds.ca_pem
        return files
    else:
        files["server.properties"] = _server_properties(topo, node, lay, creds)
        files[CLIENT_PROPERTIES] = client_properties(topo, lay, creds)
        if creds is not None:
            key, cert = creds.nodes[node.name]
            files["tls/ca.pem"] = creds.ca_pem
            files["tls/node.pem"] = key + cert
    name = log_config_name(topo.version)
    files[name] = render_template(f"log/{name}.j2", version=topo.version,
                                  level=topo.spec.kafka.log_level)
    if "metrics" in node.ports:
        files[metrics.RULES_FILE] = render_template(metrics.template_for(node.role), node=node,
                                                    version=topo.version)
    return files


# -- what Kafka's tools in a node need (kops.tools puts them on PATH) ----------------------------

CLIENT_PROPERTIES = "client.properties"


def client_properties(topo: Topology, lay: Layout, creds: Credentials | None) -> str:
    """A Kafka node's client config for Kafka's own tools inside it (--command-config,
    --producer.config, ...): the cluster network's bootstrap servers and, on a secure
    cluster, kops's admin over TLS (+ SCRAM) with the node's CA file."""
    sec = topo.spec.security
    # no bootstrap.servers here: the tools take $KAFKA_BOOTSTRAP_SERVERS on their command line,
    # so a broker added or removed changes no node's files (scaling rolls no other node)
    items: list[tuple[str, str]] = []
    if sec.tls:
        if creds is None:
            raise KopsError("a secure cluster is rendered without its credentials (kops.secrets)")
        items += [("security.protocol", "SASL_SSL" if sec.sasl else "SSL"), ("ssl.truststore.type", "PEM"),
                  ("ssl.truststore.location", f"{lay.conf_dir}/tls/ca.pem"),
                  ("ssl.endpoint.identification.algorithm", "https")]
        if sec.sasl:
            items += [("sasl.mechanism", sec.mechanism),
                      ("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                           f'username="{ADMIN}" password="{creds.admin_password}";')]
    return render_template("kafka/client.properties.j2", cluster=topo.name, items=items,
                           path=f"{lay.conf_dir}/{CLIENT_PROPERTIES}")


def service_client(topo: Topology, node: Node, lay: Layout, creds: Credentials | None) -> list[tuple[str, str]]:
    """A Connect worker's or the registry's Kafka client security settings (unprefixed; each
    service puts them under its own prefixes): TLS with the cluster CA (a PEM truststore,
    host names verified) and, with SASL, SCRAM as the service's own user. Empty on a plain
    cluster. The password makes the file that holds them a secret one (``_secret_names``)."""
    sec = topo.spec.security
    if not sec.tls:
        return []
    if creds is None:
        raise KopsError("a secure cluster is rendered without its credentials (kops.secrets)")
    items = [("security.protocol", "SASL_SSL" if sec.sasl else "SSL"), ("ssl.truststore.type", "PEM"),
             ("ssl.truststore.location", f"{lay.conf_dir}/tls/ca.pem"),
             ("ssl.endpoint.identification.algorithm", "https")]
    if sec.sasl:
        user = SERVICE_USERS[node.role]
        if user not in creds.users:
            raise KopsError(f"{node.name}: the password of {user} is missing from the cluster's credentials")
        items += [("sasl.mechanism", sec.mechanism),
                  ("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                       f'username="{user}" password="{creds.users[user]}";')]
    return items


TOOL_ADDRESSES = ("KAFKA_BOOTSTRAP_SERVERS", "ZOOKEEPER_CONNECT")   # for the tools typed in a node only


def node_env(topo: Topology, node: Node) -> dict[str, str]:
    """The node's environment: what Kafka's tools typed in it need (the cluster network's
    addresses, its client config)."""
    lay = layout(topo, node)
    env = {"KOPS_CLUSTER": topo.name, "KOPS_NODE": node.name, "KAFKA_HOME": lay.home,
           "KAFKA_BOOTSTRAP_SERVERS": topo.internal_bootstrap}
    if node.role == "registry":   # not a Kafka distribution: no Kafka tools there
        del env["KAFKA_HOME"]
        return env
    if node.is_kafka:
        env["KOPS_CLIENT_CONFIG"] = f"{lay.conf_dir}/{CLIENT_PROPERTIES}"
    if topo.mode != "kraft":
        env["ZOOKEEPER_CONNECT"] = topo.zookeeper_connect
    return env


def profile_path(topo: Topology) -> str:
    return f"/etc/profile.d/kops-{topo.name}.sh"


def login_profile(topo: Topology) -> str:
    """SSH hosts: login shells get the cluster's tools on PATH and its bootstrap servers,
    unless something chose a cluster already (`kops exec`/`kops shell` set their node's
    own; with several kops clusters on a host, the first file read wins)."""
    import shlex

    home = layout(topo, topo.nodes[0]).home
    env = {"KOPS_CLUSTER": topo.name, "KAFKA_BOOTSTRAP_SERVERS": topo.internal_bootstrap}
    if topo.mode != "kraft":
        env["ZOOKEEPER_CONNECT"] = topo.zookeeper_connect
    lines = [f"# Rendered by kops: cluster {topo.name}'s Kafka tools ({home}/bin) for login shells on this host.",
             'if [ -z "${KOPS_CLUSTER:-}" ]; then',
             *[f"  export {k}={shlex.quote(v)}" for k, v in env.items()],
             f'  PATH={shlex.quote(home + "/bin")}:"$PATH"; export PATH',
             "fi", ""]
    return "\n".join(lines)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


sha = _sha   # what a file's sum is (kops.orchestration compares files read back from a node)


def config_hash(files: dict[str, str], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:16]


def unit_name(topo: Topology, node: Node) -> str:
    return f"kops-{topo.name}-{node.name}.service"


def systemd_unit(topo: Topology, node: Node) -> str:
    lay = layout(topo, node)
    launch = launch_for(topo, node)
    role = launch_role(node)
    after = [unit_name(topo, z) for z in topo.zookeepers if z.host_key == node.host_key] if node.is_kafka else []
    return render_template(
        "systemd/node.service.j2", cluster=topo.name, node=node, version=topo.version, layout=lay,
        user=KAFKA_USER, after=after, exec_start=systemd_line(launch.argv(role)),
        exec_start_pre=[systemd_line(p) for p in launch.prestart(role)],
        stop_grace=stop_grace(topo, node))


def _secret_names(creds: Credentials | None) -> set[str]:
    """Files that hold a key or a password (readable by the service user only)."""
    if creds is None:
        return set()
    # a Connect worker's and the registry's properties hold their SCRAM user's password
    services = {CONNECT_PROPERTIES, registry.PROPERTIES} if creds.mechanism else set()
    return {"server.properties", "tls/node.pem", CLIENT_PROPERTIES} | services


def _format_argv(topo: Topology, launch: Launch, creds: Credentials | None, node: Node | None = None,
                 *, join: bool = False) -> list[str]:
    """KRaft's storage format. A dynamic quorum (KIP-853): the controllers of a new cluster
    are formatted with the initial voter set (each with its directory id); a controller
    that joins a running quorum, and every broker, with none (it starts as an observer)."""
    argv = launch.format_storage(topo.cluster_id)
    if topo.quorum == "dynamic":
        if node is not None and node.is_controller and not join:
            argv += ["--initial-controllers", topo.initial_controllers()]
        else:
            argv += ["--no-initial-controllers"]
    if creds is not None and creds.mechanism:
        # KRaft: the brokers' own SCRAM user exists from the first start (KIP-900)
        argv += ["--add-scram", f"{creds.mechanism}=[name={ADMIN},password={creds.admin_password}]"]
    return argv


def node_bundle(topo: Topology, node: Node, creds: Credentials | None = None) -> NodeBundle:
    lay = layout(topo, node)
    launch = launch_for(topo, node)
    role = launch_role(node)
    named = node_files(topo, node, creds)
    files = {f"{lay.conf_dir}/{name}": text for name, text in named.items()}
    secret = frozenset(f"{lay.conf_dir}/{name}" for name in named if name in _secret_names(creds))
    unit = container = None
    if topo.driver == "ssh":
        unit = unit_name(topo, node)
        files[f"/etc/systemd/system/{unit}"] = systemd_unit(topo, node)
        files[profile_path(topo)] = login_profile(topo)
    fmt = _format_argv(topo, launch, creds, node) if topo.mode == "kraft" and node.is_kafka else None
    join = _format_argv(topo, launch, creds, node, join=True) if fmt and topo.quorum == "dynamic" else fmt
    argv = launch.argv(role)
    # the login profile (the cluster's tools for a login shell on an SSH host) is written with
    # the node but not compared: the brokers it names change when the cluster scales
    sums = {p: _sha(t) for p, t in files.items() if p != profile_path(topo)}
    if topo.driver == "docker":
        container = container_plan(topo, node, creds=creds)
    # what the node's process runs on; the tools-only addresses (TOOL_ADDRESSES) are left out,
    # so that a broker added or removed does not roll every other node (kops exec/shell pass
    # their current values; a container keeps the ones it was created with)
    definition = json.dumps([argv, launch.prestart(role), container and container["image"],
                             container and container["ports"]]
                            + ([{k: v for k, v in container["environment"].items() if k not in TOOL_ADDRESSES}]
                               if container else []))
    digest = config_hash(sums, definition)
    if container is not None:
        container["labels"][f"{LABEL}.config-hash"] = digest
        container["labels"][f"{LABEL}.sums"] = ",".join(
            f"{p}={s}" for p, s in sorted(sums.items()))
    scram = None
    if node.role == "zookeeper" and creds is not None and creds.mechanism:
        # written through this ZooKeeper node, before any broker starts (kafka-configs --zookeeper)
        scram = [launch.java, "-Xmx128m", "-cp", launch.classpath, "kafka.admin.ConfigCommand",
                 "--zookeeper", f"{node.hostname}:{node.ports['client']}", "--alter", "--entity-type", "users",
                 "--entity-name", ADMIN, "--add-config", f"{creds.mechanism}=[password={creds.admin_password}]"]
    return NodeBundle(node, lay, files, argv, launch.prestart(role), fmt, stop_grace(topo, node),
                      unit, container, sums, digest, secret, scram, env=node_env(topo, node), join_format_argv=join)


def build(topo: Topology, creds: Credentials | None = None) -> Bundle:
    return Bundle(topo, {n.name: node_bundle(topo, n, creds) for n in topo.nodes})


# -- containers (the Docker provider and the compose bundle share this) ------------------------

def container_name(topo: Topology, node: Node) -> str:
    return f"{topo.name}-{node.name}"


def volume_name(topo: Topology, node: Node) -> str:
    return f"{topo.name}-{node.name}-data"


def network_name(name: str) -> str:
    return f"kops-{name}"


def container_plan(topo: Topology, node: Node, *, standalone: bool = False,
                   creds: Credentials | None = None) -> dict:
    """The container of a node. ``standalone`` (the compose bundle): the command also
    formats KRaft storage on first start, since no kops plans it there."""
    lay = layout(topo, node)
    launch = launch_for(topo, node)
    role = launch_role(node)
    cid = topo.cluster_id if topo.mode == "kraft" and node.is_kafka else None
    # Client ports on the publish address (loopback for a cluster advertised there); the
    # DOCKER listener on the engine's bridge gateway, where host.docker.internal lands,
    # never on every interface.
    bind = topo.publish_host()
    cmd = container_command(launch, role, cid if standalone else None,
                            format_argv=_format_argv(topo, launch, creds, node) if standalone and cid else None)
    if node.role == "zookeeper":
        # a plain TCP connect: a four-letter word here would log a line every 2 s
        health = ["CMD-SHELL", f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{node.ports['client']}'"]
        published = {f"{node.ports['client']}/tcp": [bind, node.ports["client"]]}
    elif node.role in ("connect", "registry"):
        health = ["CMD-SHELL", f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{node.ports['rest']}'"]
        published = {f"{node.ports['rest']}/tcp": [bind, node.ports["rest"]]}
    else:
        probe = node.ports.get("internal") or node.ports["controller"]
        health = ["CMD-SHELL", f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{probe}'"]
        published = {f"{node.ports['external']}/tcp": [bind, node.ports["external"]],
                     f"{node.ports['docker']}/tcp": [GATEWAY, node.ports["docker"]]} if node.is_broker else {}
        if "jmx" in node.ports:
            published[f"{node.ports['jmx']}/tcp"] = [bind, node.ports["jmx"]]
    if "metrics" in node.ports:
        published[f"{node.ports['metrics']}/tcp"] = [bind, node.ports["metrics"]]
    image = registry.IMAGE if node.role == "registry" else topo.spec.kafka.image_ref
    labels = {
        f"{LABEL}.cluster": topo.name,
        f"{LABEL}.node": node.name,
        f"{LABEL}.role": node.role,
        f"{LABEL}.node-id": str(node.id),
        f"{LABEL}.mode": topo.mode,
        f"{LABEL}.kafka-version": topo.version,
        f"{LABEL}.stop-grace": str(stop_grace(topo, node)),
        **({f"{LABEL}.migration": "on"} if node.name in topo.migration else {}),
        **{f"{LABEL}.user.{k}": v for k, v in topo.spec.labels.items()},
    }
    if cid:
        labels[f"{LABEL}.cluster-id"] = cid
        labels[f"{LABEL}.quorum"] = topo.quorum
    sec = topo.spec.security
    if sec.tls:
        labels[f"{LABEL}.security"] = "tls" + (f",{sec.sasl}" if sec.sasl else "")
    if node.is_broker:
        labels[f"{LABEL}.external"] = topo.external_address(node)
        labels[f"{LABEL}.internal"] = f"{node.hostname}:{node.ports['internal']}"
        labels[f"{LABEL}.docker"] = f"host.docker.internal:{node.ports['docker']}"
        if "jmx" in node.ports:
            labels[f"{LABEL}.jmx"] = f"{topo.publish_host()}:{node.ports['jmx']}"
    if node.role == "zookeeper":
        labels[f"{LABEL}.client-port"] = str(node.ports["client"])
    if node.role in ("connect", "registry"):
        labels[f"{LABEL}.rest"] = topo.rest_address(node)
    if "metrics" in node.ports:
        labels[f"{LABEL}.metrics"] = topo.metrics_address(node)
    return {
        "name": container_name(topo, node), "hostname": node.name, "image": image,
        "command": cmd, "ports": published, "volume": volume_name(topo, node),
        "data_mount": lay.data_dir, "conf_dir": lay.conf_dir, "healthcheck": health,
        "labels": labels, "stop_timeout": stop_grace(topo, node),
        "network": network_name(topo.name),
        "depends_on": ([z.name for z in topo.zookeepers] if node.is_kafka else
                       [b.name for b in topo.brokers] if node.role in ("connect", "registry") else []),
        "environment": node_env(topo, node),
    }


def compose_file(topo: Topology, creds: Credentials | None = None) -> str:
    containers = []
    for n in topo.nodes:
        c = container_plan(topo, n, standalone=True, creds=creds)
        c["labels"][f"{LABEL}.config-hash"] = "compose"
        c["ports"] = {k: [COMPOSE_GATEWAY if ip == GATEWAY else ip, hp] for k, (ip, hp) in c["ports"].items()}
        containers.append(c)
    return render_template("compose/docker-compose.yml.j2", cluster=topo.name, mode=topo.mode,
                           version=topo.version, containers=containers,
                           bootstrap=topo.bootstrap_servers, internal_bootstrap=topo.internal_bootstrap)


def export(topo: Topology, creds: Credentials | None = None) -> dict[str, str]:
    """Relative path -> content for `kops render`: every node's files, plus compose (docker)
    or units (ssh)."""
    out: dict[str, str] = {}
    for node in topo.nodes:
        for name, text in node_files(topo, node, creds).items():
            out[f"{node.name}/{name}"] = text
        if topo.driver == "ssh":
            out[f"{node.name}/{unit_name(topo, node)}"] = systemd_unit(topo, node)
    if topo.driver == "ssh":
        out[f"profile.d/{profile_path(topo).rsplit('/', 1)[1]}"] = login_profile(topo)
    if topo.driver == "docker":
        out["docker-compose.yml"] = compose_file(topo, creds)
    if topo.spec.metrics.prometheus:
        out["prometheus.yml"] = metrics.prometheus_config(topo)
    return out


def export_secret(rel: str, creds: Credentials | None) -> bool:
    """Whether an exported file holds a key or a password."""
    return creds is not None and (rel == "docker-compose.yml" or rel.split("/", 1)[-1] in _secret_names(creds))


def write_export(files: dict[str, str], out_dir: Path, creds: Credentials | None = None) -> list[Path]:
    """Write the bundle; files holding a key or a password get mode 0600, the rest 0644."""
    written = []
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o600 if export_secret(rel, creds) else 0o644)
        written.append(path)
    return written
