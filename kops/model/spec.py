"""The inventory model: what a cluster spec may say, with every rule that the spec alone decides.

Single-field rules (names, hosts, users, paths, ports, versions, heaps, config keys and
values) live on the fields, so a library caller that builds a ``ClusterSpec`` gets the
same validation as the CLI. Rules that need the whole spec (ensemble sizes, mode vs
version, replication factors vs brokers, hosts vs roles) run in a model validator and are
reported together. Rules that need the derived nodes (ids, ports) belong to
:mod:`kops.topology`; reading YAML belongs to :mod:`kops.inventory`. This module imports
neither.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StringConstraints,
                      ValidationInfo, field_validator, model_validator)
from pydantic_core import PydanticCustomError

from kops.core.errors import InputError

NAME_RE = re.compile(r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?", re.ASCII)
# X.Y.Z in ASCII digits, no leading zeros, bounded: the one check of a version for every command
VERSION_RE = re.compile(r"(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})", re.ASCII)
DEFAULT_PRESET = "zk-single-kafka-single"
RULES_ERROR = "kops_rules"

# Limits that keep a typo (`nodes: 1000000000`) from building a huge cluster in memory.
MAX_BROKERS = 64
MAX_ZOOKEEPERS = 7
MAX_CONTROLLERS = 9

# Keys that kops renders itself from the topology: setting them in `config` would break
# the listeners, ids or quorum kops relies on.
MANAGED_KEYS = {
    "broker.id", "node.id", "process.roles", "listeners", "advertised.listeners",
    "listener.security.protocol.map", "inter.broker.listener.name", "controller.listener.names",
    "controller.quorum.voters", "controller.quorum.bootstrap.servers", "zookeeper.connect",
    "log.dirs", "log.dir", "metadata.log.dir",
    # zoo.cfg
    "dataDir", "clientPort", "myid", "dataLogDir",
}


# With security on, kops renders these itself (stores, JAAS with the brokers' credentials).
SECURITY_PREFIXES = ("ssl.", "sasl.", "listener.name.", "security.", "super.users")


def _short(value, limit: int = 60) -> str:
    """A value as the error shows it: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'" + f" ({len(str(value))} chars)"


def _pattern(regex: str, what: str, example: str):
    compiled = re.compile(regex, re.ASCII)   # \d and \w: ASCII only (no fullwidth or other digits)

    def check(v: str) -> str:
        if not compiled.fullmatch(v):
            raise ValueError(f"{_short(v)} is not {what}: {example}")
        return v
    return AfterValidator(check)


Name = Annotated[str, _pattern(NAME_RE.pattern, "DNS-safe",
                               "use 1-32 lowercase letters, digits and '-', starting with a letter")]
Heap = Annotated[str, _pattern(r"[1-9][0-9]{0,5}[mMgG]", "a heap size", "use e.g. 256m or 1g")]
Version = Annotated[str, _pattern(VERSION_RE.pattern, "a version", "use X.Y.Z, e.g. 3.9.2 or 4.1.1")]
# A host name (RFC 1123 labels) or an IPv4 address; no spaces, quotes or shell characters.
HostAddress = Annotated[str, _pattern(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
                                      "a host name or IPv4 address", "e.g. 10.0.0.11 or kafka1.example.com")]
def _ipv4_if_numeric(v: str) -> str:
    if re.fullmatch(r"[0-9.]+", v):
        import ipaddress

        try:
            ipaddress.IPv4Address(v)
        except ValueError:
            raise ValueError(f"{_short(v)} is not an IPv4 address (four numbers 0-255, no leading zeros)") from None
    return v


HostAddress = Annotated[HostAddress, AfterValidator(_ipv4_if_numeric)]
UserName = Annotated[str, _pattern(r"[a-z_][a-z0-9_-]{0,31}", "a user name", "e.g. root or deploy")]
ImageRef = Annotated[str, StringConstraints(max_length=255), _pattern(r"[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
                                   r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?",
                                   "an image reference", "e.g. kops/kafka:3.9.2 or registry:5000/kafka:4.1.1")]
ClusterId = Annotated[str, _pattern(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", "a Kafka cluster id",
                                    "22 characters of base64url, not starting with '-' "
                                    "(`kops` makes one when this is absent)")]
Port = Annotated[int, Field(ge=1, le=65535)]
LabelKey = Annotated[str, _pattern(r"[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?", "a label key",
                                   "lowercase letters, digits, '.', '_' and '-'")]
LabelValue = Annotated[str, StringConstraints(max_length=200), _pattern(r"[A-Za-z0-9 ._:/@+=-]*", "a label value",
                                                                     "letters, digits, spaces and ._:/@+=-")]


def _config_value(v):
    if isinstance(v, str):
        if any(c in v for c in "\n\r\0") or len(v) > 4096:
            raise ValueError(f"{_short(v)} is not a config value: one line, no NUL, at most 4096 characters")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{_short(v)} is not a config value: it holds broken Unicode") from None
    if isinstance(v, float) and v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{v!r} is not a config value: use a finite number")
    return v


ConfigKey = Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", "a config key",
                                    "letters, digits, '.', '_' and '-', like min.insync.replicas")]
ConfigValue = Annotated[str | int | float | bool, AfterValidator(_config_value)]
Config = dict[ConfigKey, ConfigValue]


class SpecError(InputError):
    """One or more problems in an inventory; ``problems`` lists them."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        n = len(problems)
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''} in the inventory:\n{body}",
                         hint="fix the fields named above; `kops init --preset NAME` writes a "
                              "working inventory to start from")


def _numeric(annotation) -> bool:
    """A number field (int or float, optional or constrained), not one that also takes a bool."""
    import typing

    args = [annotation]
    found: set = set()
    while args:
        a = args.pop()
        if a in (int, float, bool, str):
            found.add(a)
        else:
            args += [x for x in typing.get_args(a) if x is not type(None)]
    return bool(found & {int, float}) and not found & {bool, str}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v, info):
        """YAML's true is not 1: a port, a count or a size given as a boolean is refused."""
        if isinstance(v, bool) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"{str(v).lower()} is a boolean, not a number")
        return v


class DownloadSpec(_Strict):
    """SSH driver: hosts download the official tarball themselves instead of receiving it."""

    url: Annotated[str, _pattern(r"https?://[A-Za-z0-9._~:/?#\[\]@!&'()*+,;=%-]{1,2000}", "an http(s) URL",
                                 "e.g. https://mirror.example.com/kafka/3.9.2/kafka_2.13-3.9.2.tgz")]
    sha512: Annotated[str, _pattern(r"[0-9a-fA-F]{128}", "a SHA-512 digest", "128 hex characters")]


class KafkaSpec(_Strict):
    version: Version = "3.9.2"
    mode: Literal["zookeeper", "kraft"] | None = None  # default: zookeeper below 4.0, else kraft
    image: ImageRef | None = None
    heap: Heap = "512m"
    cluster_id: ClusterId | None = None
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    config: Config = Field(default_factory=dict)
    # keys of plugins (reporters, authorizers, ...) that Kafka's own definitions do not list:
    # exact names, or prefixes ending in * (my.reporter.*)
    custom_keys: list[Annotated[str, _pattern(r"[A-Za-z][A-Za-z0-9._-]{0,127}\*?", "a config key or prefix*",
                                              "e.g. my.reporter.url or my.reporter.*")]] = Field(
        default_factory=list, max_length=200)
    download: DownloadSpec | None = None

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def image_ref(self) -> str:
        return self.image or f"kops/kafka:{self.version}"


class ZooKeeperSpec(_Strict):
    nodes: int | None = Field(default=None, ge=1, le=MAX_ZOOKEEPERS)
    heap: Heap = "256m"
    client_port: Port = 2181
    peer_port: Port = 2888
    election_port: Port = 3888
    config: Config = Field(default_factory=dict)


class BrokerSpec(_Strict):
    nodes: int | None = Field(default=None, ge=1, le=MAX_BROKERS)
    heap: Heap | None = None  # default: kafka.heap
    internal_port: Port = 19092
    external_port: Port = 9092
    docker_port: Port = 29092
    controller_port: Port = 19192  # KRaft combined nodes
    jmx_port: Port | None = None   # off unless set: 9999, 10000, ...
    advertised_host: HostAddress = "127.0.0.1"
    # where client ports listen on the host (SSH) or are published (Docker); default: the
    # node's own address (SSH), loopback or the advertised address (Docker). 0.0.0.0 only
    # when asked for here.
    bind_address: Annotated[str, _pattern(r"([0-9]{1,3}\.){3}[0-9]{1,3}", "an IPv4 address",
                                          "e.g. 10.0.0.11, 127.0.0.1, or 0.0.0.0 for every interface"),
                            AfterValidator(_ipv4_if_numeric)] | None = None
    # auto: `kops up` evens replicas and leaders out when they spread beyond a threshold
    # (kops.kafka.balance); off: only `kops balance --execute` does
    rebalance: Literal["off", "auto"] = "off"
    config: Config = Field(default_factory=dict)

    @field_validator("rebalance", mode="before")
    @classmethod
    def _yaml_off(cls, v):
        """YAML reads a bare off/on as a boolean: false is 'off', true 'auto'."""
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v


class ControllerSpec(_Strict):
    nodes: int | None = Field(default=None, ge=1, le=MAX_CONTROLLERS)
    heap: Heap = "256m"
    port: Port = 19192
    config: Config = Field(default_factory=dict)


Role = Literal["zookeeper", "broker", "controller", "connect", "registry"]
KeyPath = Annotated[str, _pattern(r"[A-Za-z0-9_./~+-][A-Za-z0-9_./~+ -]{0,1023}", "a key file path",
                                  "a path such as ~/.ssh/id_ed25519")]


class HostSpec(_Strict):
    address: HostAddress
    user: UserName = "root"
    port: Port = 22
    key: KeyPath | None = None
    sudo: bool = False
    roles: list[Role] = Field(min_length=1, max_length=5)


class NodeOverride(_Strict):
    id: int | None = Field(default=None, ge=0, le=2_000_000_000)
    heap: Heap | None = None
    config: Config = Field(default_factory=dict)


PASSWORD_RE = re.compile(r"[A-Za-z0-9._~+/=-]{12,128}", re.ASCII)   # safe in JAAS lines, properties and SCRAM


def _password(v: str) -> str:
    if not PASSWORD_RE.fullmatch(v):
        # never echoed: a refused password is still somebody's password
        raise ValueError("not a usable password (the value is not shown): use 12-128 letters, digits and "
                         "._~+/=-, or leave it out and kops makes one")
    return v


Password = Annotated[str, AfterValidator(_password)]


class UserSpec(_Strict):
    password: Password | None = None   # default: generated, kept 0600 on this machine


# -- authorization (Kafka's own authorizer, ACLs) and quotas ------------------------------------

# Kafka's operations (AclOperation), as the inventory writes them
ACL_OPERATIONS = ("all", "read", "write", "create", "delete", "alter", "describe", "cluster_action",
                  "describe_configs", "alter_configs", "idempotent_write", "create_tokens", "describe_tokens")
# what Kafka accepts per resource type (org.apache.kafka.common.acl.AclEntry.supportedOperations)
ACL_SUPPORTED = {
    "topic": {"read", "write", "create", "describe", "delete", "alter", "describe_configs", "alter_configs"},
    "group": {"read", "describe", "delete"},
    "cluster": {"create", "cluster_action", "describe_configs", "alter_configs", "idempotent_write", "alter",
                "describe"},
    "transactional_id": {"describe", "write"},
}
ACL_RESOURCES = ("topic", "group", "transactional_id", "cluster")
MAX_ACLS = 2000   # ACL entries (one resource, several operations each) in one inventory
AclOperationName = Literal["all", "read", "write", "create", "delete", "alter", "describe", "cluster_action",
                           "describe_configs", "alter_configs", "idempotent_write", "create_tokens",
                           "describe_tokens"]


def _resource_name(v: str) -> str:
    # Kafka takes any string for a group or transactional id: kops takes one printable line
    if not v or len(v) > 249 or any(ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029\x85" for c in v):
        raise ValueError(f"{_short(v)} is not a resource name: 1-249 characters, one line, no control characters")
    return v


ResourceName = Annotated[str, AfterValidator(_resource_name)]
# a user of security.users, or a principal as Kafka writes it (User:CN=app,O=example: a certificate's name)
PRINCIPAL_RE = re.compile(r"User:[A-Za-z0-9_][A-Za-z0-9 =,.+_@:/-]{0,254}", re.ASCII)


def _acl_principal(v: str) -> str:
    if not (NAME_RE.fullmatch(v) or PRINCIPAL_RE.fullmatch(v)) or v.endswith(" "):
        raise ValueError(f"{_short(v)} is not a user or a principal: a user of security.users (e.g. app), or "
                         "User:NAME (letters, digits, spaces and =,.+_@:/-)")
    return v


AclPrincipal = Annotated[str, AfterValidator(_acl_principal)]


class AclSpec(_Strict):
    """One ACL entry: a resource (exactly one of topic, group, transactional_id, cluster), how
    its name matches, allow or deny, the operations. ``topic: "orders-*"`` is the prefix
    ``orders-``; ``topic: "*"`` every topic."""

    topic: ResourceName | None = None
    group: ResourceName | None = None
    transactional_id: ResourceName | None = None
    cluster: Literal[True] | None = None
    pattern: Literal["literal", "prefixed"] | None = None   # default: prefixed for a name ending in '*'
    permission: Literal["allow", "deny"] = "allow"
    operations: list[AclOperationName] = Field(min_length=1, max_length=len(ACL_OPERATIONS))
    host: Annotated[str, _pattern(r"\*|([0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-fA-F:]{2,39}", "a host",
                                  "* (any) or an IP address")] = "*"

    @property
    def resource(self) -> tuple[str, str]:
        """(type, name as given); the cluster is kafka-cluster."""
        for kind in ACL_RESOURCES:
            v = getattr(self, kind)
            if v is not None:
                return kind, ("kafka-cluster" if kind == "cluster" else v)
        return "", ""

    @property
    def resolved(self) -> tuple[str, str, str]:
        """(type, name, literal|prefixed) as Kafka stores it: a trailing '*' means the prefix."""
        kind, name = self.resource
        if name != "*" and name.endswith("*") and self.pattern in (None, "prefixed"):
            return kind, name[:-1], "prefixed"
        return kind, name, self.pattern or "literal"


class QuotaSpec(_Strict):
    """Kafka's client quotas of a user or a client id (bytes per second per broker; a
    percentage of one request thread's time)."""

    producer_byte_rate: int | None = Field(default=None, gt=0, le=2**53)
    consumer_byte_rate: int | None = Field(default=None, gt=0, le=2**53)
    request_percentage: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)

    def values(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


ClientId = Annotated[str, _pattern(r"[A-Za-z0-9._-]{1,249}", "a client id",
                                   "1-249 letters, digits, '.', '_' and '-'")]


class QuotasSpec(_Strict):
    users: dict[Name, QuotaSpec] = Field(default_factory=dict, max_length=100)
    clients: dict[ClientId, QuotaSpec] = Field(default_factory=dict, max_length=100)


class SecuritySpec(_Strict):
    """TLS on every Kafka listener (clients, between brokers, to the controllers), and SASL
    for clients and brokers. A per-cluster CA and the node certificates are made by kops."""

    tls: bool = False
    sasl: Literal["scram-sha-512", "scram-sha-256"] | None = None
    users: dict[Name, UserSpec] = Field(default_factory=dict, max_length=100)
    # Kafka's own authorizer (deny unless an ACL allows): on with acls, or asked for alone
    authorization: bool | None = None
    acls: dict[AclPrincipal, list[AclSpec]] = Field(default_factory=dict, max_length=200)
    quotas: QuotasSpec = Field(default_factory=QuotasSpec)

    @property
    def authorizer(self) -> bool:
        """Kafka's authorizer is on: asked for, or implied by ACLs (authorization: false with
        acls is refused by the rules)."""
        return bool(self.authorization) or (self.authorization is None and bool(self.acls))

    @property
    def mechanism(self) -> str | None:
        return self.sasl.upper() if self.sasl else None


class SSHSettings(_Strict):
    # a known_hosts file to verify the hosts' keys against (default: ~/.ssh/known_hosts and
    # kops's own, where --accept-new-host-keys records new keys)
    known_hosts: KeyPath | None = None


NodeName = Annotated[str, _pattern(r"[a-z][a-z0-9-]{0,40}", "a node name", "zoo1, kafka2, controller3, ...")]

MAX_CONNECT = 9
# each part starts with a letter or digit: no part is "." or "..", so none names a folder above its own
_MAVEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}:[A-Za-z0-9][A-Za-z0-9_.-]{0,99}:[A-Za-z0-9][A-Za-z0-9_.+-]{0,59}",
                       re.ASCII)
_JAR_RE = re.compile(r"[A-Za-z0-9_./~+-][A-Za-z0-9_./~+-]{0,1018}\.jar", re.ASCII)
_JAR_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}\.jar", re.ASCII)   # its file name: its folder's name


def _plugin(v: str) -> str:
    if not (_MAVEN_RE.fullmatch(v) or _JAR_RE.fullmatch(v)):
        raise ValueError(f"{_short(v)} is not a Maven coordinate or a local .jar: e.g. "
                         "org.example:my-connector:1.2.0 or ./jars/my-connector.jar (each part of a coordinate "
                         "starts with a letter or digit)")
    if ":" not in v and not _JAR_NAME_RE.fullmatch(v.rsplit("/", 1)[-1]):
        raise ValueError(f"{_short(v)}: the jar's file name must start with a letter or digit and have at most "
                         "120 characters of letters, digits and _.+- (it names the plugin's folder)")
    return v


# A Maven coordinate group:artifact:version, or a local jar path
Plugin = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_plugin)]


class MetricsSpec(_Strict):
    """The Prometheus JMX exporter on every JVM of the cluster (brokers, controllers,
    ZooKeeper, Connect workers): an HTTP /metrics endpoint per node."""

    prometheus: bool = False
    port: Port = 7071            # the first node's; the next nodes take 7072, 7073, ... (per host over SSH)


class ConnectSpec(_Strict):
    """Kafka Connect in distributed mode: workers connect1..N of one group."""

    nodes: int = Field(default=1, ge=1, le=MAX_CONNECT)
    heap: Heap = "384m"
    rest_port: Port = 8083       # connect1's; connect2 8084, ...
    group: Name | None = None    # group.id; default: <cluster>-connect
    plugins: list[Plugin] = Field(default_factory=list, max_length=50)
    config: Config = Field(default_factory=dict)


MAX_REGISTRY = 3


class SchemaRegistrySpec(_Strict):
    """A schema registry with the Confluent-compatible REST API (Apicurio Registry, kops.registry),
    stored in the cluster's own Kafka: nodes registry1..N."""

    nodes: int = Field(default=1, ge=1, le=MAX_REGISTRY)
    heap: Heap = "160m"
    port: Port = 8081            # registry1's; registry2 8082, ... (per host over SSH)
    # the default compatibility of every subject (Confluent's default too); subjects may set their own
    compatibility: Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                           "FULL_TRANSITIVE", "NONE"] = "BACKWARD"
    config: Config = Field(default_factory=dict)


# Topics: Kafka's own rule (Topic.validate): 1-249 of [a-zA-Z0-9._-], not "." or "..".
TOPIC_RE = re.compile(r"[a-zA-Z0-9._-]{1,249}", re.ASCII)
MAX_PARTITIONS = 10000   # per topic: a typo (`partitions: 1000000`) must not reach the brokers


def _topic_name(v: str) -> str:
    if not TOPIC_RE.fullmatch(v) or v in (".", ".."):
        raise ValueError(f"{_short(v)} is not a topic name: 1-249 letters, digits, '.', '_' and '-', "
                         "not '.' or '..'")
    return v


TopicName = Annotated[str, AfterValidator(_topic_name)]


class TopicSpec(_Strict):
    """A topic kops creates at `up` and alters when it differs (more partitions, configs);
    never deleted or shrunk."""

    partitions: int = Field(default=1, ge=1, le=MAX_PARTITIONS)
    replication_factor: int | None = Field(default=None, ge=1, le=MAX_BROKERS)  # None: the brokers' default
    config: Config = Field(default_factory=dict)
    internal: bool = False   # deliberately one of Kafka's, Connect's or the registry's own topics


class ClusterSpec(_Strict):
    name: Name = "kops"
    kafka: KafkaSpec = Field(default_factory=KafkaSpec)
    zookeeper: ZooKeeperSpec | None = None
    brokers: BrokerSpec = Field(default_factory=BrokerSpec)
    controllers: ControllerSpec | None = None
    driver: Literal["docker", "ssh"] = "docker"
    hosts: dict[Name, HostSpec] = Field(default_factory=dict, max_length=64)
    ssh: SSHSettings = Field(default_factory=SSHSettings)
    security: SecuritySpec = Field(default_factory=SecuritySpec)
    # auto: the host ports are picked free at the first `up` and kept (Docker): clusters of
    # the same preset side by side, CI jobs on one runner, tests beside a user's cluster
    ports: Literal["fixed", "auto"] = "fixed"
    # fast: for tests and laptops: a JVM tuned to start (C1 only, serial GC, small heaps),
    # single-partition internal topics, fewer threads. Settings given in the inventory win.
    profile: Literal["standard", "fast"] = "standard"
    nodes: dict[NodeName, NodeOverride] = Field(default_factory=dict, max_length=200)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=32)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    connect: ConnectSpec | None = None
    schema_registry: SchemaRegistrySpec | None = None
    topics: dict[TopicName, TopicSpec] = Field(default_factory=dict, max_length=1000)

    @model_validator(mode="after")
    def _whole_spec(self, info: ValidationInfo):
        if info.context and info.context.get("skip_rules"):
            return self
        problems = rules(self)
        if problems:
            raise PydanticCustomError(RULES_ERROR, "{text}",
                                      {"text": "; ".join(problems), "problems": problems})
        return self

    @property
    def connect_group(self) -> str:
        """The Connect workers' group id (its internal topics are named after it)."""
        return (self.connect.group if self.connect and self.connect.group else None) or f"{self.name}-connect"

    @property
    def mode(self) -> str:
        return self.kafka.mode or ("zookeeper" if self.kafka.major < 4 else "kraft")

    @property
    def zk_nodes(self) -> int:
        if self.mode != "zookeeper":
            return 0
        return (self.zookeeper.nodes if self.zookeeper and self.zookeeper.nodes else None) \
            or self._hosts_with("zookeeper") or 1

    @property
    def broker_nodes(self) -> int:
        return self.brokers.nodes or self._hosts_with("broker") or 1

    @property
    def controller_nodes(self) -> int:
        """Dedicated controllers (KRaft split); 0 means combined broker,controller nodes."""
        if self.mode != "kraft" or self.controllers is None:
            return 0
        return self.controllers.nodes or self._hosts_with("controller") or 3

    def _hosts_with(self, role: str) -> int:
        return sum(1 for h in self.hosts.values() if role in h.roles) if self.driver == "ssh" else 0

    @property
    def zk(self) -> ZooKeeperSpec:
        return self.zookeeper or ZooKeeperSpec()

    @property
    def ctl(self) -> ControllerSpec:
        return self.controllers or ControllerSpec()


# -- whole-spec rules -------------------------------------------------------------------

_REPLICATION_KEYS = ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                     "default.replication.factor", "min.insync.replicas", "transaction.state.log.min.isr")


def rules(spec: ClusterSpec) -> list[str]:
    """Rules that need the whole spec (but not the derived nodes). Every problem found."""
    p: list[str] = []
    k = spec.kafka
    if k.major < 3:
        p.append(f"kafka.version: {k.version!r} is too old: kops supports 3.x (ZooKeeper or KRaft) and 4.x (KRaft)")
    if spec.mode == "zookeeper" and k.major >= 4:
        p.append(f"kafka.mode: zookeeper needs Kafka below 4.0, and kafka.version is {k.version!r}: "
                 "Kafka 4 runs only in KRaft mode (use mode: kraft, or version 3.9.2)")
    if spec.mode == "kraft" and spec.zookeeper is not None:
        p.append("zookeeper: not used in KRaft mode: remove the zookeeper section, or set kafka.mode: zookeeper")
    if spec.mode == "zookeeper" and spec.controllers is not None:
        p.append("controllers: dedicated controllers exist only in KRaft mode: remove the section, "
                 "or set kafka.mode: kraft")
    zn = spec.zk_nodes
    if spec.mode == "zookeeper":
        if zn % 2 == 0:
            p.append(f"zookeeper.nodes: {zn} is even: an ensemble of {zn} survives no more failures than "
                     f"{zn - 1}; use 1, 3 or 5")
        elif zn > MAX_ZOOKEEPERS:
            p.append(f"zookeeper.nodes: {zn} is too many: use 1, 3 or 5 ({MAX_ZOOKEEPERS} at most)")
    cn = spec.controller_nodes
    if cn and cn % 2 == 0:
        p.append(f"controllers.nodes: {cn} is even: a KRaft quorum of {cn} survives no more failures "
                 f"than {cn - 1}; use 1, 3 or 5")
    if spec.mode == "kraft" and not cn and spec.broker_nodes % 2 == 0:
        p.append(f"brokers.nodes: {spec.broker_nodes} combined broker,controller nodes make an even KRaft "
                 "quorum; use 1, 3 or 5, or add a controllers section for dedicated controllers")
    p += _config_rules(spec)
    if spec.driver == "docker" and k.download:
        p.append("kafka.download: only used with driver: ssh (Docker nodes run the image)")
    if spec.driver == "docker" and spec.hosts:
        p.append("hosts: only used with driver: ssh (this inventory has driver: docker)")
    b = spec.brokers
    if spec.driver == "docker" and not b.bind_address and b.advertised_host not in ("127.0.0.1", "localhost") \
            and not re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", b.advertised_host):
        p.append(f"brokers.bind_address: required when brokers.advertised_host is a name "
                 f"({b.advertised_host!r}): the host address its ports are published on, e.g. 10.0.0.5 "
                 "(0.0.0.0 for every interface)")
    if spec.ports == "auto" and spec.driver != "docker":
        p.append("ports: auto picks free ports on the Docker engine's host; over SSH give the ports")
    sec = spec.security
    if sec.sasl and not sec.tls:
        p.append(f"security.sasl: {sec.sasl} without tls would send passwords in the clear; add security.tls: true")
    if sec.users and not sec.sasl:
        p.append("security.users: users need security.sasl (e.g. scram-sha-512)")
    for own in ("kops-admin", "kops-node"):
        if own in sec.users:
            p.append(f"security.users.{own}: this name is kops's own; pick another")
    publish = b.bind_address or ("127.0.0.1" if b.advertised_host in ("127.0.0.1", "localhost") else b.advertised_host)
    if b.jmx_port and spec.driver == "docker" and not publish.startswith("127."):
        p.append(f"brokers.jmx_port: JMX has no authentication, and this cluster publishes its ports on {publish}: "
                 "open JMX runs any code it is sent. Keep the cluster on loopback (brokers.bind_address: "
                 "127.0.0.1) or drop jmx_port; reach a remote JMX through an SSH tunnel")
    if spec.ssh.known_hosts and not _is_file(spec.ssh.known_hosts):
        p.append(f"ssh.known_hosts: {_short(spec.ssh.known_hosts)}: no such file")
    if spec.driver == "ssh":
        p += _ssh_rules(spec)
    p += _topic_rules(spec)
    p += _acl_rules(spec)
    p += _connect_rules(spec)
    p += _registry_rules(spec)
    return p


def internal_topics(spec: ClusterSpec) -> set[str]:
    """The topics that belong to Kafka's machinery, Connect's group or the registry (by name;
    every name starting with '__' is Kafka's)."""
    from kops.services.registry import JOURNAL, SNAPSHOTS

    out = set()
    if spec.connect is not None:
        out |= {f"{spec.connect_group}-{k}" for k in ("configs", "offsets", "status")}
    if spec.schema_registry is not None:
        out |= {JOURNAL, SNAPSHOTS}
    return out


def _topic_rules(spec: ClusterSpec) -> list[str]:
    p: list[str] = []
    seen: dict[str, str] = {}
    internal = internal_topics(spec)
    for name, t in spec.topics.items():
        if (name.startswith("__") or name in internal) and not t.internal:
            p.append(f"topics.{name}: {'Kafka' if name.startswith('__') else 'Connect or the registry'} keeps this "
                     "topic for itself; changing it from the inventory can break the cluster. Remove it, or set "
                     f"topics.{name}.internal: true to change it deliberately")
        if t.replication_factor and t.replication_factor > spec.broker_nodes:
            p.append(f"topics.{name}.replication_factor: {t.replication_factor} is above the number of brokers "
                     f"({spec.broker_nodes}); use at most {spec.broker_nodes} or add brokers")
        # Kafka refuses a topic whose name differs from another's only by '.' vs '_' (metric names collide)
        other = seen.setdefault(name.replace(".", "_"), name)
        if other != name:
            p.append(f"topics.{name}: collides with topic {other!r} ('.' and '_' are the same to Kafka's "
                     "metrics, so Kafka refuses the second); rename one")
    return p


def _acl_rules(spec: ClusterSpec) -> list[str]:
    """ACLs and quotas: a principal to grant to, users that exist, operations each resource
    takes, one resource per entry, no ACL twice."""
    sec = spec.security
    p: list[str] = []
    if (sec.acls or sec.authorization) and not sec.sasl:
        what = "security.acls" if sec.acls else "security.authorization"
        p.append(f"{what}: needs security.sasl (and tls): without SASL every client is the same anonymous "
                 "principal, so there is nobody to grant to (add sasl: scram-sha-512 and users)")
    if sec.acls and sec.authorization is False:
        p.append("security.authorization: false turns Kafka's authorizer off, so security.acls would grant "
                 "nothing; drop `authorization: false` or the acls")
    if sec.authorizer:
        sections = [("kafka.config", spec.kafka.config), ("brokers.config", spec.brokers.config),
                    ("controllers.config", spec.ctl.config)] + [(f"nodes.{n}.config", o.config)
                                                                for n, o in spec.nodes.items()]
        for section, cfg in sections:
            for key in sorted(set(cfg) & {"authorizer.class.name", "allow.everyone.if.no.acl.found"}):
                p.append(f"{section}.{key}: kops sets Kafka's authorizer itself when security.acls or "
                         "security.authorization is given; remove it")
    for who, entries in sec.acls.items():
        if not who.startswith("User:"):
            if who in ("kops-admin", "kops-node") or who in (CONNECT_USER, REGISTRY_USER):
                p.append(f"security.acls.{who}: kops's own users are super users (every operation); they need no ACLs")
            elif sec.sasl and who not in sec.users:
                p.append(f"security.acls.{who}: no such user in security.users "
                         f"({', '.join(sorted(sec.users)) or 'none listed'}); add it there, or write User:{who} "
                         "for a principal kops does not manage")
        seen: dict[tuple, int] = {}
        for i, a in enumerate(entries):
            given = [k for k in ACL_RESOURCES if getattr(a, k) is not None]
            if len(given) != 1:
                p.append(f"security.acls.{who}.{i}: name exactly one resource: topic, group, transactional_id or "
                         f"cluster: true ({', '.join(given) if given else 'none'} given)")
                continue
            kind, name, pattern = a.resolved
            if kind == "cluster" and a.pattern == "prefixed":
                p.append(f"security.acls.{who}.{i}.pattern: the cluster has no prefixed pattern; drop it")
            if pattern == "prefixed" and not name:
                p.append(f"security.acls.{who}.{i}.{kind}: an empty prefix; use \"*\" for every {kind}")
            if "*" in name and name != "*":
                p.append(f"security.acls.{who}.{i}.{kind}: {_short(a.resource[1])}: '*' is either the whole name "
                         "(every resource) or its end (a prefix)")
            if kind == "topic" and name != "*" and name and not TOPIC_RE.fullmatch(name):
                p.append(f"security.acls.{who}.{i}.topic: {_short(a.resource[1])} can match no topic: topic names "
                         "have letters, digits, '.', '_' and '-'")
            for j, op in enumerate(a.operations):
                if op != "all" and op not in ACL_SUPPORTED.get(kind, set()):
                    p.append(f"security.acls.{who}.{i}.operations.{j}: {op} is not an operation of a {kind} "
                             f"(use {', '.join(['all', *sorted(ACL_SUPPORTED[kind])])})")
                key = (kind, name, pattern, a.permission, a.host, op)
                if key in seen:
                    p.append(f"security.acls.{who}.{i}.operations.{j}: {op} on this {kind} is also in entry "
                             f"{seen[key]}; list it once")
                seen.setdefault(key, i)
    q = sec.quotas
    if q.users and not sec.sasl:
        p.append("security.quotas.users: user quotas need security.sasl (without it clients have no user name); "
                 "use security.quotas.clients for client ids")
    for who, spec_q in q.users.items():
        if sec.sasl and who not in sec.users and who not in (CONNECT_USER, REGISTRY_USER):
            p.append(f"security.quotas.users.{who}: no such user in security.users; add it there")
        if not spec_q.values():
            p.append(f"security.quotas.users.{who}: give at least one of producer_byte_rate, consumer_byte_rate, "
                     "request_percentage")
    for cid, spec_q in q.clients.items():
        if not spec_q.values():
            p.append(f"security.quotas.clients.{cid}: give at least one of producer_byte_rate, "
                     "consumer_byte_rate, request_percentage")
    return p


def _config_rules(spec: ClusterSpec) -> list[str]:
    p: list[str] = []
    nb = spec.broker_nodes
    sections = [("kafka.config", spec.kafka.config), ("brokers.config", spec.brokers.config),
                ("zookeeper.config", spec.zk.config), ("controllers.config", spec.ctl.config)]
    sections += [(f"nodes.{n}.config", o.config) for n, o in spec.nodes.items()]
    for section, cfg in sections:
        role = _section_role(section)
        if role in ("connect", "registry"):
            continue   # their own rules (kops.spec._connect_rules, _registry_rules)
        managed = set(cfg) & MANAGED_KEYS
        if role == "zookeeper":   # zookeeper.config and every nodes.zooN.config: the ensemble is kops's
            managed |= {k for k in cfg if re.fullmatch(r"server\.[0-9]+|group\.[0-9]+|weight\.[0-9]+", k)}
        if spec.security.tls and role != "zookeeper":
            managed |= {k for k in cfg if k.startswith(SECURITY_PREFIXES)}
        for key in sorted(managed):
            p.append(f"{section}.{key}: kops sets this key itself from the inventory (ids, listeners, "
                     "quorum, data folders, security); remove it and use the inventory's fields instead")
        if role in ("zookeeper", "controller"):
            continue
        for key in _REPLICATION_KEYS:
            if key not in cfg:
                continue
            try:
                val = int(cfg[key])
            except (TypeError, ValueError, OverflowError):
                p.append(f"{section}.{key}: {_short(cfg[key])} is not a whole number: use e.g. "
                         f"{min(2, nb) if key != 'default.replication.factor' else min(3, nb)}")
                continue
            if val > nb:
                p.append(f"{section}.{key}: {val} is above the number of brokers ({nb}); "
                         f"use at most {nb} or add brokers")
            elif val < 1 and key != "default.replication.factor":
                p.append(f"{section}.{key}: {val} must be at least 1")
    return p


def _section_role(section: str) -> str:
    """The role a config section configures: zookeeper.config and nodes.zooN.config ->
    zookeeper; controllers.config, nodes.controllerN -> controller; nodes.connectN ->
    connect; nodes.registryN -> registry; the rest -> broker."""
    head = section.split(".")[0] if not section.startswith("nodes.") else section.split(".")[1]
    for prefix, role in (("zoo", "zookeeper"), ("controller", "controller"), ("connect", "connect"),
                         ("registry", "registry"), ("schema_registry", "registry")):
        if head.startswith(prefix):
            return role
    return "broker"


# Connect worker keys kops renders itself (the group, its topics, the REST listener, the plugins)
CONNECT_MANAGED = {"bootstrap.servers", "group.id", "config.storage.topic", "offset.storage.topic",
                   "status.storage.topic", "config.storage.replication.factor",
                   "offset.storage.replication.factor", "status.storage.replication.factor", "listeners",
                   "rest.port", "rest.host.name", "rest.advertised.host.name", "rest.advertised.port",
                   "rest.advertised.listener", "plugin.path"}


# the SCRAM users of kops's services on a secure cluster (made by `kops up`, passwords kept like kops-admin's)
CONNECT_USER = "kops-connect"
REGISTRY_USER = "kops-registry"


def _service_security_key(key: str, prefixes: tuple[str, ...]) -> bool:
    """A Kafka client security key under one of ``prefixes`` (ssl.*, sasl.*, security.protocol)."""
    return any(key.startswith(pre) and key[len(pre):].startswith(("ssl.", "sasl.", "security."))
               for pre in prefixes)


def _connect_rules(spec: ClusterSpec) -> list[str]:
    c = spec.connect
    if c is None:
        return []
    p: list[str] = []
    sections = [("connect.config", c.config)] + [(f"nodes.{n}.config", o.config) for n, o in spec.nodes.items()
                                                 if re.fullmatch(r"connect[0-9]+", n)]
    for section, cfg in sections:
        for key in sorted(set(cfg) & CONNECT_MANAGED):
            p.append(f"{section}.{key}: kops sets this Connect key itself (the group, its internal topics, "
                     "the REST listener, plugin.path); remove it and use connect.group / connect.rest_port")
    if spec.security.tls:   # the workers' and their connectors' clients get kops's TLS (+ SCRAM) settings
        for section, cfg in sections:
            for key in sorted(k for k in cfg if _service_security_key(k, ("", "producer.", "consumer.", "admin."))):
                p.append(f"{section}.{key}: kops sets the workers' security settings itself on a secure cluster "
                         f"(TLS with the cluster CA, SCRAM as {CONNECT_USER}); remove it")
    if spec.security.sasl and CONNECT_USER in spec.security.users:
        p.append(f"security.users.{CONNECT_USER}: this name is kops's own (the Connect workers' user); pick another")
    for i, given in enumerate(c.plugins):
        if ":" not in given and not _is_file(given):
            p.append(f"connect.plugins.{i}: {_short(given)}: no such file (a jar path relative to the directory "
                     "kops runs in, or absolute)")
    if len(set(c.plugins)) != len(c.plugins):
        p.append("connect.plugins: a plugin is listed twice; list each once")
    return p


def _registry_rules(spec: ClusterSpec) -> list[str]:
    from kops.services.registry import MANAGED

    r = spec.schema_registry
    if r is None:
        return []
    p: list[str] = []
    sections = [("schema_registry.config", r.config)] + [(f"nodes.{n}.config", o.config) for n, o in spec.nodes.items()
                                                         if re.fullmatch(r"registry[0-9]+", n)]
    for section, cfg in sections:
        for key, value in sorted(cfg.items()):
            if "${" in str(value):   # the registry's configuration library would expand it (${HOME}, ${PATH}, ...)
                p.append(f"{section}.{key}: {_short(value)} holds '${{', which the registry expands as a property or "
                         "environment variable when it starts; kops passes values as written: remove the '${'")
        for key in sorted(set(cfg) & set(MANAGED)):
            p.append(f"{section}.{key}: kops sets this registry key itself (its storage in Kafka, the brokers, "
                     "the REST listener, the global compatibility); remove it and use schema_registry.port / "
                     "schema_registry.compatibility")
    if spec.security.tls:   # its Kafka clients get kops's TLS (+ SCRAM) settings
        for section, cfg in sections:
            for key in sorted(k for k in cfg if k.startswith(("apicurio.kafkasql.security.", "apicurio.kafkasql.ssl."))
                              or _service_security_key(k, ("apicurio.kafka.common.", "apicurio.kafkasql.producer.",
                                                           "apicurio.kafkasql.consumer.", "apicurio.kafkasql.admin."))):
                p.append(f"{section}.{key}: kops sets the registry's Kafka security settings itself on a secure "
                         f"cluster (TLS with the cluster CA, SCRAM as {REGISTRY_USER}); remove it")
    if spec.security.sasl and REGISTRY_USER in spec.security.users:
        p.append(f"security.users.{REGISTRY_USER}: this name is kops's own (the schema registry's user); pick another")
    if spec.kafka.image:
        p.append("schema_registry: needs kops's own images (kops/registry runs beside kops/kafka); drop "
                 "kafka.image or the schema_registry section")
    return p


def _is_file(path: str) -> bool:
    """A readable file at ``path`` (~user expanded); False for anything the OS refuses."""
    try:
        return Path(path).expanduser().is_file()
    except (OSError, RuntimeError, ValueError):
        return False


def _ssh_rules(spec: ClusterSpec) -> list[str]:
    p = []
    if not spec.hosts:
        return ["hosts: driver: ssh needs at least one host, e.g. hosts: {vm1: {address: 10.0.0.11, "
                "roles: [zookeeper, broker]}}"]
    need = {"broker": spec.broker_nodes}
    if spec.mode == "zookeeper":
        need["zookeeper"] = spec.zk_nodes
    if spec.controller_nodes:
        need["controller"] = spec.controller_nodes
    if spec.connect:
        need["connect"] = spec.connect.nodes
    if spec.schema_registry:
        need["registry"] = spec.schema_registry.nodes
    for role, count in need.items():
        have = spec._hosts_with(role)
        if have < count:
            p.append(f"hosts: {count} {role} node(s) need {count} host(s) with role {role}, "
                     f"and {have} have it; add '{role}' to the roles of more hosts")
    if spec.mode == "kraft" and not spec.controller_nodes and spec._hosts_with("controller"):
        p.append("hosts: role controller is given but the cluster has no controllers section "
                 "(combined nodes); add controllers: {nodes: N} or drop the role")
    if spec.mode == "kraft" and spec._hosts_with("zookeeper"):
        p.append("hosts: role zookeeper is given, but a KRaft cluster has no ZooKeeper; drop the role")
    seen: dict[tuple[str, int], str] = {}
    for hname, h in spec.hosts.items():
        if len(set(h.roles)) != len(h.roles):
            p.append(f"hosts.{hname}.roles: {h.roles} names a role twice")
        other = seen.setdefault((h.address.lower(), h.port), hname)
        if other != hname:
            p.append(f"hosts.{hname}.address: {h.address}:{h.port} is also the address of host {other}; "
                     "give each machine one host entry (several roles per host are fine)")
        if h.key is not None and not _is_file(h.key):
            p.append(f"hosts.{hname}.key: {_short(h.key)}: no such file")
    return p
