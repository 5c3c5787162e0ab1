"""The inventory: a YAML cluster spec, loaded strictly, defaulted, then validated.

Structure errors (unknown keys, wrong types) come from pydantic; the rules that need the
whole picture (ensemble sizes, versions, ports, hosts and roles) come from
:func:`validate`. Every problem found is reported at once, each with its path in the file,
the bad value and what is allowed. Any problem raises :class:`SpecError` (exit code 2)
before anything is created anywhere.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import paths
from .errors import InputError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
HEAP_RE = re.compile(r"^\d+[mMgG]$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
ConfigValue = str | int | float | bool
DEFAULT_PRESET = "zk-single-kafka-single"


class SpecError(InputError):
    """One or more problems in an inventory; ``problems`` lists them."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        n = len(problems)
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''} in the inventory:\n{body}",
                         hint="fix the fields named above; `kops init --preset NAME` writes a "
                              "working inventory to start from")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _heap(v: str | None) -> str | None:
    if v is not None and not HEAP_RE.match(v):
        raise ValueError(f"heap {v!r} must look like 256m or 1g")
    return v


class DownloadSpec(_Strict):
    """SSH driver: hosts download the official tarball themselves instead of receiving it."""

    url: str
    sha512: str = Field(pattern=r"^[0-9a-fA-F]{128}$")


class KafkaSpec(_Strict):
    version: str = "3.9.2"
    mode: Literal["zookeeper", "kraft"] | None = None  # default: zookeeper below 4.0, else kraft
    image: str | None = None
    heap: str = "512m"
    cluster_id: str | None = None
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    config: dict[str, ConfigValue] = Field(default_factory=dict)
    download: DownloadSpec | None = None

    _heap = field_validator("heap")(_heap)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0]) if VERSION_RE.match(self.version) else 0

    @property
    def image_ref(self) -> str:
        return self.image or f"kops/kafka:{self.version}"


class ZooKeeperSpec(_Strict):
    nodes: int | None = Field(default=None, ge=1)
    heap: str = "256m"
    client_port: int = Field(default=2181, ge=1, le=65535)
    peer_port: int = Field(default=2888, ge=1, le=65535)
    election_port: int = Field(default=3888, ge=1, le=65535)
    config: dict[str, ConfigValue] = Field(default_factory=dict)

    _heap = field_validator("heap")(_heap)


class BrokerSpec(_Strict):
    nodes: int | None = Field(default=None, ge=1)
    heap: str | None = None  # default: kafka.heap
    internal_port: int = Field(default=19092, ge=1, le=65535)
    external_port: int = Field(default=9092, ge=1, le=65535)
    docker_port: int = Field(default=29092, ge=1, le=65535)
    controller_port: int = Field(default=19192, ge=1, le=65535)  # KRaft combined nodes
    jmx_port: int | None = Field(default=None, ge=1, le=65535)   # off unless set: 9999, 10000, ...
    advertised_host: str = "127.0.0.1"
    config: dict[str, ConfigValue] = Field(default_factory=dict)

    _heap = field_validator("heap")(_heap)


class ControllerSpec(_Strict):
    nodes: int | None = Field(default=None, ge=1)
    heap: str = "256m"
    port: int = Field(default=19192, ge=1, le=65535)
    config: dict[str, ConfigValue] = Field(default_factory=dict)

    _heap = field_validator("heap")(_heap)


Role = Literal["zookeeper", "broker", "controller"]


class HostSpec(_Strict):
    address: str
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    key: str | None = None
    sudo: bool = False
    roles: list[Role] = Field(min_length=1)


class NodeOverride(_Strict):
    id: int | None = Field(default=None, ge=0)
    heap: str | None = None
    config: dict[str, ConfigValue] = Field(default_factory=dict)

    _heap = field_validator("heap")(_heap)


class ClusterSpec(_Strict):
    name: str = "kops"
    kafka: KafkaSpec = Field(default_factory=KafkaSpec)
    zookeeper: ZooKeeperSpec | None = None
    brokers: BrokerSpec = Field(default_factory=BrokerSpec)
    controllers: ControllerSpec | None = None
    driver: Literal["docker", "ssh"] = "docker"
    hosts: dict[str, HostSpec] = Field(default_factory=dict)
    nodes: dict[str, NodeOverride] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)

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


# -- loading ---------------------------------------------------------------------------

def preset_names() -> list[str]:
    return sorted(p.stem for p in paths.inventories_dir().glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = paths.inventories_dir() / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name, preset_names(), n=1)
        raise InputError(f"no preset named {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                         hint="presets: " + ", ".join(preset_names()))
    return path


def load(path: str | Path | None = None, preset: str | None = None) -> ClusterSpec:
    """Load an inventory file or a preset (the default preset when both are None)."""
    if path and preset:
        raise InputError("give either -i FILE or --preset NAME, not both")
    if path is None:
        path = preset_path(preset or DEFAULT_PRESET)
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read inventory {path}: {exc.strerror}",
                         hint="check the path, or use --preset NAME") from exc
    return loads(text, str(path))


def loads(text: str, source: str = "<inventory>") -> ClusterSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise SpecError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(source, [f"the top level must be a mapping of keys, not {type(data).__name__}"])
    try:
        spec = ClusterSpec.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e, data) for e in exc.errors()]
        problems += _rules_without(data, exc)
        raise SpecError(source, problems) from exc
    problems = validate(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def _rules_without(data: dict, exc: ValidationError) -> list[str]:
    """The whole-spec rules, run on the inventory minus its broken keys, so that every
    problem shows at once. Skipped when a node count is broken: the rules would count wrong."""
    import copy

    trimmed = copy.deepcopy(data)
    for _ in range(3):
        errors = exc.errors()
        if any(e["loc"] and e["loc"][-1] == "nodes" and e["type"] != "extra_forbidden" for e in errors):
            return []
        for e in errors:
            parent = trimmed
            try:
                for part in e["loc"][:-1]:
                    parent = parent[part]
                if isinstance(parent, dict):
                    parent.pop(e["loc"][-1], None)
                else:
                    return []
            except (KeyError, IndexError, TypeError):
                return []
        try:
            return validate(ClusterSpec.model_validate(trimmed))
        except ValidationError as again:
            exc = again
    return []


def _allowed_keys(data: Any, loc: tuple) -> list[str]:
    model: Any = ClusterSpec
    for part in loc[:-1]:
        if model is None:
            return []
        field = model.model_fields.get(part) if isinstance(part, str) and hasattr(model, "model_fields") else None
        if field is None:
            # inside a dict[str, Model]: the key is a free name, keep the model
            if isinstance(part, str) and model in (HostSpec, NodeOverride):
                continue
            return []
        ann = field.annotation
        inner = _model_of(ann)
        model = inner
    return list(model.model_fields) if model is not None and hasattr(model, "model_fields") else []


def _model_of(ann) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        m = _model_of(arg)
        if m is not None:
            return m
    return None


def _describe(err: dict, data: dict) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(data, loc)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {'.'.join(str(p) for p in loc[:-1] + (close[0],))}?)" if close else ""
        known = f"; known keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key{hint}{known}"
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    msg = err["msg"]
    if kind == "missing":
        return f"{where}: required and missing"
    if kind == "literal_error":
        return f"{where}: {shown} is not allowed: {msg.replace('Input should be', 'use')}"
    return f"{where}: {shown} is not valid: {msg}"


# -- whole-spec rules -------------------------------------------------------------------

def validate(spec: ClusterSpec) -> list[str]:
    """Rules that need the whole spec. Returns every problem found (empty: valid)."""
    from .topology import build  # the rules about ports and ids need the derived nodes

    p: list[str] = []
    k = spec.kafka
    if not NAME_RE.match(spec.name):
        p.append(f"name: {spec.name!r} is not DNS-safe: use 1-32 lowercase letters, digits and '-', "
                 "starting with a letter")
    if not VERSION_RE.match(k.version):
        p.append(f"kafka.version: {k.version!r} is not a version: use X.Y.Z, e.g. 3.9.2 or 4.1.1")
    elif k.major < 3:
        p.append(f"kafka.version: {k.version!r} is too old: kops supports 3.x (ZooKeeper or KRaft) and 4.x (KRaft)")
    if spec.mode == "zookeeper" and k.major >= 4:
        p.append(f"kafka.mode: zookeeper needs Kafka below 4.0, and kafka.version is {k.version!r}: "
                 "Kafka 4 runs only in KRaft mode (use mode: kraft, or version 3.9.2)")
    if spec.mode == "kraft" and spec.zookeeper is not None:
        p.append("zookeeper: not used in KRaft mode: remove the zookeeper section, or set kafka.mode: zookeeper")
    if spec.mode == "zookeeper" and spec.controllers is not None:
        p.append("controllers: dedicated controllers exist only in KRaft mode: remove the section, "
                 "or set kafka.mode: kraft")
    if k.cluster_id is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", k.cluster_id):
        p.append(f"kafka.cluster_id: {k.cluster_id!r} is not a Kafka cluster id: 22 characters of "
                 "base64url, not starting with '-' (`kops` makes one when this is absent)")
    zn = spec.zk_nodes
    if spec.mode == "zookeeper":
        if zn % 2 == 0:
            p.append(f"zookeeper.nodes: {zn} is even: an ensemble of {zn} survives no more failures than "
                     f"{zn - 1}; use 1, 3 or 5")
        elif zn > 7:
            p.append(f"zookeeper.nodes: {zn} is too many: use 1, 3 or 5 (7 at most)")
    cn = spec.controller_nodes
    if cn and cn % 2 == 0:
        p.append(f"controllers.nodes: {cn} is even: a KRaft quorum of {cn} survives no more failures "
                 f"than {cn - 1}; use 1, 3 or 5")
    if spec.mode == "kraft" and not cn and spec.broker_nodes % 2 == 0:
        p.append(f"brokers.nodes: {spec.broker_nodes} combined broker,controller nodes make an even KRaft "
                 "quorum; use 1, 3 or 5, or add a controllers section for dedicated controllers")
    nb = spec.broker_nodes
    for section, cfg in (("kafka.config", k.config), ("brokers.config", spec.brokers.config)):
        for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                    "default.replication.factor", "min.insync.replicas", "transaction.state.log.min.isr"):
            if key in cfg:
                try:
                    val = int(cfg[key])
                except (TypeError, ValueError):
                    p.append(f"{section}.{key}: {cfg[key]!r} is not a whole number")
                    continue
                if val > nb:
                    p.append(f"{section}.{key}: {val} is above the number of brokers ({nb}); "
                             f"use at most {nb} or add brokers")
                elif val < 1 and key != "default.replication.factor":
                    p.append(f"{section}.{key}: {val} must be at least 1")
    if spec.driver == "docker" and k.download:
        p.append("kafka.download: only used with driver: ssh (Docker nodes run the image)")
    if k.download and not k.download.url.startswith(("http://", "https://")):
        p.append(f"kafka.download.url: {k.download.url!r} must be an http:// or https:// URL")
    if spec.driver == "docker" and spec.hosts:
        p.append("hosts: only used with driver: ssh (this inventory has driver: docker)")
    if spec.driver == "ssh":
        p += _ssh_rules(spec)
    try:
        topo = build(spec, cluster_id=k.cluster_id or "AAAAAAAAAAAAAAAAAAAAAA")
    except Exception:  # the problems above already explain why it cannot be built
        return p
    names = {n.name for n in topo.nodes}
    for name in spec.nodes:
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            p.append(f"nodes.{name}: no such node" + (f" (did you mean {close[0]}?)" if close else "")
                     + f"; nodes of this cluster: {', '.join(sorted(names))}")
    seen: dict[tuple[str, int], str] = {}
    for n in topo.nodes:
        if n.role == "zookeeper":
            continue
        key = ("kafka-id", n.id)
        if key in seen:
            mine, other = (seen[key], n.name) if seen[key] in spec.nodes else (n.name, seen[key])
            p.append(f"nodes.{mine}.id: {n.id} is also the id of {other}; node ids must be unique")
        seen[key] = n.name
    for n in topo.nodes:
        own: dict[int, str] = {}
        for pname, port in n.ports.items():
            if port in own:
                p.append(f"port {port}: {n.name} would listen on it twice ({own[port]} and {pname}); "
                         "give the *_port settings distinct ranges")
            own.setdefault(port, pname)
    ports: dict[tuple[str, int], str] = {}
    for n in topo.nodes:
        for pname, port in n.bound_ports(spec.driver).items():
            key = (n.host_key, port)
            if key in ports and ports[key] != f"{n.name} ({pname})":
                where = "the Docker engine's host" if spec.driver == "docker" else f"host {n.host_key}"
                p.append(f"port {port}: {n.name} ({pname}) and {ports[key]} both need it on {where}; "
                         "change one of the *_port settings")
            ports.setdefault(key, f"{n.name} ({pname})")
    return p


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
    for hname, h in spec.hosts.items():
        if not NAME_RE.match(hname):
            p.append(f"hosts.{hname}: host names must be DNS-safe (lowercase letters, digits, '-')")
        if h.key is not None and not Path(h.key).expanduser().is_file():
            p.append(f"hosts.{hname}.key: {h.key!r}: no such file")
    return p
