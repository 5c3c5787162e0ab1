"""Topics and consumer groups of a running cluster, through confluent-kafka (librdkafka)
from wherever kops runs: the library behind `kops topic|group`, the connection that
`kops produce|consume` share (messages: :mod:`kops.messages`), the inventory's ``topics:``
at `up`, and the client files of `kops env --write`.

Everything here takes a :class:`Session` (bootstrap servers plus librdkafka settings: a
kops cluster's own TLS/SASL settings, a --command-config file, -X overrides) and returns
plain data; nothing prints. The pure parts (the consume format template, where a consumer
starts, offset-reset planning, the inventory topics' diff) are functions of data alone and
are unit-tested as such.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from kops.core import paths
from kops.core.errors import InputError, KopsError, NotFoundError, WaitTimeout
from kops.model.spec import MAX_PARTITIONS, TopicSpec, _short, _topic_name
from kops.model.spec import ConfigKey
from kops.model.spec import ConfigValue
from kops.model.spec import SpecError

INTERNAL_PREFIX = "__"


# -- the connection ------------------------------------------------------------------------------

# librdkafka's words for credentials the brokers refused (error_cb, or an operation's error)
AUTH_CODES = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED")
# ... and for a principal the brokers know but whose ACLs do not allow the operation
DENIED_CODES = ("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
                "TRANSACTIONAL_ID_AUTHORIZATION_FAILED")


class _Quiet:
    """librdkafka's own log lines (connection refused while a broker starts) stay out of the
    output; the last error is kept so that a timeout can say why, and an authentication
    failure so that the waits stop at once (librdkafka itself retries until the timeout)."""

    def __init__(self):
        self.last: str | None = None
        self.auth: str | None = None

    def log(self, *args, **kwargs):
        pass

    def error(self, err) -> None:
        self.last = err.str() if hasattr(err, "str") else str(err)
        name = err.name() if hasattr(err, "name") else ""
        if name in AUTH_CODES:
            self.auth = self.last


def principal(settings: dict[str, str]) -> str:
    """Who the client is to the brokers, in words (the password never shown):
    "user 'app' (SASL SCRAM-SHA-512 over SASL_SSL)", "no SASL user (SSL)"."""
    proto = settings.get("security.protocol", "PLAINTEXT").upper()
    mech = settings.get("sasl.mechanisms") or settings.get("sasl.mechanism") or ("GSSAPI" if "SASL" in proto else "")
    if "SASL" in proto:
        return f"user {settings.get('sasl.username', '(none set)')!r} (SASL {mech.upper()} over {proto})"
    return f"no SASL user ({proto}: the brokers see an anonymous or certificate principal)"


def auth_failure(bootstrap: str, settings: dict[str, str], detail: str) -> KopsError:
    """The brokers refused the credentials (exit 1): who, how, where, what to check."""
    detail = re.sub(r"^[a-z_]+://\S+?: ", "", detail)   # librdkafka's "sasl_ssl://host:port/bootstrap: "
    return KopsError(f"authentication failed for {principal(settings)} at {bootstrap}: {detail}",
                     hint="the user name or password is wrong, or the mechanism is not the cluster's (check "
                          "--command-config and -X sasl.username/sasl.password/sasl.mechanisms); for a kops "
                          "cluster `kops client-config USER -i INVENTORY -o DIR` writes working settings, or "
                          "leave out --command-config and give -i/--name")


def denied(what: str, settings: dict[str, str], code: str, detail: str) -> KopsError:
    """The brokers know the principal, and its ACLs do not allow ``what`` (exit 1)."""
    on = {"TOPIC_AUTHORIZATION_FAILED": "the topic", "GROUP_AUTHORIZATION_FAILED": "the consumer group",
          "CLUSTER_AUTHORIZATION_FAILED": "the cluster",
          "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": "the transactional id"}.get(code, "the resource")
    return KopsError(f"{what}: not authorized: {principal(settings)} has no ACL allowing this on {on} ({detail})",
                     hint="authentication worked: this user lacks the permission. Add an ACL for it "
                          "(kafka-acls --add --allow-principal User:NAME ...), or use a user that has it; for a "
                          "kops cluster `kops client-config -i INVENTORY -o DIR` writes kops's own admin settings")


@dataclass
class Session:
    """Where and how the data commands connect (librdkafka setting names)."""

    bootstrap: str
    settings: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    _quiet: _Quiet = field(default_factory=_Quiet, repr=False)
    _admin: object = field(default=None, repr=False)

    def conf(self, **extra) -> dict:
        out = {"bootstrap.servers": self.bootstrap, "logger": self._quiet, "log_level": 0,
               "error_cb": self._quiet.error, **self.settings}
        out.update(extra)
        return out

    def admin(self):
        """One admin client per session, kept: its futures fail once it is collected."""
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = _built(AdminClient, self.conf())
        return self._admin

    def why(self) -> str:
        return f" (last client error: {self._quiet.last})" if self._quiet.last else ""

    def check(self, client=None, *, poll: bool = True) -> None:
        """Raise the authentication failure a client of this session reported (error_cb,
        served by ``client``'s poll, or the admin's), if any: at once, not at the timeout.
        ``poll=False``: the caller's own poll serves the callbacks (a consumer's would
        consume)."""
        if client is None:
            client = self._admin
        if poll and client is not None and self._quiet.auth is None:
            try:
                client.poll(0)
            except (RuntimeError, TypeError, ValueError):
                pass
        if self._quiet.auth is not None:
            raise auth_failure(self.bootstrap, self.settings, self._quiet.auth)

    def denied(self, what: str, code: str, detail: str) -> KopsError:
        return denied(what, self.settings, code, detail)


def _built(cls, conf: dict):
    from confluent_kafka import KafkaException

    try:
        return cls(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        raise InputError(f"the client settings were refused: {_err(exc)}",
                         hint="check --command-config and -X (librdkafka names, e.g. security.protocol=SSL)") \
            from None


def _err(exc: Exception) -> str:
    err = exc.args[0] if exc.args else None
    return err.str() if hasattr(err, "str") else f"{exc}"


def _code(exc: Exception) -> str:
    err = exc.args[0] if exc.args else None
    return err.name() if hasattr(err, "name") else ""


def _result(fut, session: Session, what: str):
    """A future's result; a timeout or a client error becomes a KopsError naming ``what``;
    credentials the brokers refuse fail at once (not at the timeout)."""
    from confluent_kafka import KafkaException

    end = time.monotonic() + session.timeout + 5
    try:
        while True:
            try:
                return fut.result(timeout=min(0.25, max(end - time.monotonic(), 0.01)))
            except FutureTimeout:
                session.check()
                if time.monotonic() >= end:
                    raise
    except FutureTimeout:
        raise WaitTimeout(f"{what}: no answer from {session.bootstrap} within {session.timeout:.0f} s"
                          + session.why()) from None
    except KafkaException as exc:
        code = _code(exc)
        if code in AUTH_CODES:
            raise auth_failure(session.bootstrap, session.settings, _err(exc)) from None
        if code in DENIED_CODES:
            raise session.denied(what, code, _err(exc)) from None
        session.check()
        if code in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "GROUP_ID_NOT_FOUND"):
            raise NotFoundError(f"{what}: {_err(exc)}") from None
        if code in ("INVALID_CONFIG", "INVALID_PARTITIONS", "INVALID_REPLICATION_FACTOR", "POLICY_VIOLATION",
                    "INVALID_TOPIC_EXCEPTION", "TOPIC_ALREADY_EXISTS", "INVALID_REQUEST", "_INVALID_ARG"):
            raise InputError(f"{what}: {_err(exc)}", hint="nothing was changed") from None
        raise KopsError(f"{what}: {_err(exc)}") from None


def parse_settings(items: Iterable[str]) -> dict[str, str]:
    """``-X key=value`` pairs."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9._]{0,127}", key.strip(), re.ASCII):
            raise InputError(f"-X {_short(item)} is not key=value",
                             hint="librdkafka settings, e.g. -X security.protocol=SSL -X ssl.ca.location=ca.pem")
        out[key.strip()] = value
    return out


_JAAS = re.compile(r'(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def read_command_config(path: str) -> dict[str, str]:
    """A Java client.properties (what Kafka's tools take as --command-config) or a
    librdkafka.conf, as librdkafka settings: a PEM truststore becomes ssl.ca.location, a
    SCRAM/PLAIN JAAS line sasl.username/sasl.password; Java-only keys are dropped."""
    raw = paths.read_input(path, "--command-config", 1 << 20)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--command-config {path}: not UTF-8 text (byte {exc.start})") from None
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if not m:
            raise InputError(f"--command-config {path}: {_short(line)} is not key=value")
        props[m.group(1)] = m.group(2).replace("\\:", ":").replace("\\=", "=").replace("\\\\", "\\")
    out = {}
    for key, value in props.items():
        if key == "sasl.jaas.config":
            creds = dict(_JAAS.findall(value))
            if "username" in creds:
                out["sasl.username"] = creds["username"]
            if "password" in creds:
                out["sasl.password"] = creds["password"]
        elif key == "ssl.truststore.location":
            if props.get("ssl.truststore.type", "JKS").upper() != "PEM":
                raise InputError(f"--command-config {path}: librdkafka reads PEM, not a "
                                 f"{props.get('ssl.truststore.type', 'JKS')} truststore",
                                 hint="set ssl.truststore.type=PEM with a PEM file, or -X ssl.ca.location=CA.pem")
            out["ssl.ca.location"] = value
        elif key in ("ssl.truststore.type", "ssl.truststore.password", "key.serializer", "value.serializer",
                     "key.deserializer", "value.deserializer") or key.startswith("sasl.login."):
            continue
        else:
            out[key] = value
    return out


# -- client profiles (kops env --write) -------------------------------------------------------------

def _prop(value: str) -> str:
    """A java.util.Properties value: backslashes, line breaks and a leading space escaped,
    non-ASCII as \\uXXXX."""
    out = []
    for i, ch in enumerate(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[ch])
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif ord(ch) > 126 or ord(ch) < 32:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def client_files(bootstrap: str, settings: dict[str, str], ca_path: str | None) -> dict[str, tuple[str, bool]]:
    """file name -> (text, holds a password) for a client of this cluster: client.properties
    (Kafka's Java clients and tools), librdkafka.conf and client.json (librdkafka settings)."""
    rd = {"bootstrap.servers": bootstrap, **{k: v for k, v in settings.items() if k != "ssl.ca.location"}}
    if ca_path:
        rd["ssl.ca.location"] = ca_path
    java = {"bootstrap.servers": bootstrap}
    if "security.protocol" in rd:
        java["security.protocol"] = rd["security.protocol"]
    if ca_path:
        java["ssl.truststore.type"] = "PEM"
        java["ssl.truststore.location"] = ca_path
    if rd.get("ssl.endpoint.identification.algorithm"):
        java["ssl.endpoint.identification.algorithm"] = rd["ssl.endpoint.identification.algorithm"]
    mech = rd.get("sasl.mechanism") or rd.get("sasl.mechanisms")
    if mech:
        java["sasl.mechanism"] = mech
        module = "scram.ScramLoginModule" if mech.upper().startswith("SCRAM") else "plain.PlainLoginModule"
        java["sasl.jaas.config"] = (f"org.apache.kafka.common.security.{module} required "
                                    f'username="{rd.get("sasl.username", "")}" '
                                    f'password="{rd.get("sasl.password", "")}";')
    secret = "sasl.password" in rd
    return {
        "client.properties": ("".join(f"{k}={_prop(v)}\n" for k, v in java.items()), secret),
        "librdkafka.conf": ("".join(f"{k}={v}\n" for k, v in rd.items()), secret),
        "client.json": (json.dumps(rd, indent=2) + "\n", secret),
    }


# -- topics ------------------------------------------------------------------------------------------

def check_topic(name: str, what: str = "topic") -> str:
    try:
        return _topic_name(name)
    except ValueError as exc:
        raise InputError(f"{what}: {exc}") from None


def parse_configs(items: Iterable[str], flag: str = "-c") -> dict[str, str]:
    """``-c key=value`` pairs (topic configs)."""
    from pydantic import TypeAdapter, ValidationError


    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError("not key=value")
            TypeAdapter(ConfigKey).validate_python(key)
            TypeAdapter(ConfigValue).validate_python(value)
        except (ValidationError, ValueError) as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ") if isinstance(exc, ValidationError) \
                else str(exc)
            raise InputError(f"{flag} {_short(item)}: {msg}", hint="e.g. -c retention.ms=86400000") from None
        out[key] = value
    return out


def list_topics(session: Session, *, internal: bool = False) -> list[dict]:
    md = _metadata(session)
    rows = []
    for t in sorted(md.topics.values(), key=lambda t: t.topic):
        if not internal and t.topic.startswith(INTERNAL_PREFIX):
            continue
        parts = t.partitions.values()
        rows.append({"topic": t.topic, "partitions": len(t.partitions),
                     "replication_factor": max((len(p.replicas) for p in parts), default=0),
                     "internal": t.topic.startswith(INTERNAL_PREFIX)})
    return rows


def _metadata(session: Session, topic: str | None = None):
    from confluent_kafka import KafkaException

    admin = session.admin()
    end = time.monotonic() + session.timeout
    step = 1.0
    while True:
        # short tries, so that refused credentials (error_cb) end the wait at once: librdkafka
        # itself retries a failed authentication until the timeout, as if the network were down
        try:
            return admin.list_topics(topic, timeout=min(step, max(end - time.monotonic(), 0.1)))
        except KafkaException as exc:
            code = _code(exc)
            if code in AUTH_CODES:
                raise auth_failure(session.bootstrap, session.settings, _err(exc)) from None
            if code in DENIED_CODES:
                raise session.denied("read the cluster's metadata", code, _err(exc)) from None
            session.check()
            if code in ("_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN") and time.monotonic() < end:
                step = min(step * 2, 8.0)
                continue
            raise KopsError(f"cannot read the cluster's metadata from {session.bootstrap}: {_err(exc)}"
                            + session.why(),
                            hint="is the cluster running (kops status) and are the client settings right?") \
                from None


def _topic_md(session: Session, name: str):
    md = _metadata(session, name)
    t = md.topics.get(name)
    if t is None or (t.error is not None and t.error.name() == "UNKNOWN_TOPIC_OR_PART"):
        raise NotFoundError(f"topic {name} does not exist", hint="kops topic list; kops topic create NAME")
    if t.error is not None and t.error.name() in DENIED_CODES:
        raise session.denied(f"topic {name}", t.error.name(), t.error.str())
    if t.error is not None:
        raise KopsError(f"topic {name}: {t.error.str()}")
    return md, t


def create_topic(session: Session, name: str, partitions: int, replication_factor: int | None,
                 config: dict[str, str], *, if_not_exists: bool = False, validate_only: bool = False) -> bool:
    """True when created (False: it existed and ``if_not_exists``)."""
    from confluent_kafka.admin import NewTopic

    check_topic(name)
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise InputError(f"--partitions {partitions}: use 1 to {MAX_PARTITIONS}")
    nt = NewTopic(name, partitions, replication_factor or -1, config={k: str(v) for k, v in config.items()})
    fut = session.admin().create_topics([nt], operation_timeout=session.timeout, request_timeout=session.timeout,
                                        validate_only=validate_only)[name]
    try:
        _result(fut, session, f"create topic {name}")
    except InputError as exc:
        if if_not_exists and "already exists" in exc.message.lower():
            return False
        if "already exists" in exc.message.lower():
            exc.hint = f"kops topic describe {name}; kops topic alter {name} changes it"
        raise
    return True


def describe_topic(session: Session, name: str) -> dict:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import ConfigResource, ConfigSource, OffsetSpec

    check_topic(name)
    _md, t = _topic_md(session, name)
    admin = session.admin()
    ids = sorted(t.partitions)
    low = _offsets(session, admin, {TopicPartition(name, p): OffsetSpec.earliest() for p in ids})
    high = _offsets(session, admin, {TopicPartition(name, p): OffsetSpec.latest() for p in ids})
    parts = []
    for pid in ids:
        p = t.partitions[pid]
        parts.append({"partition": pid, "leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isrs),
                      "low": low.get((name, pid)), "high": high.get((name, pid))})
    res = ConfigResource("TOPIC", name)
    entries = _result(admin.describe_configs([res], request_timeout=session.timeout)[res], session,
                      f"describe the configs of topic {name}")
    configs = {k: ("****" if e.is_sensitive else e.value) for k, e in sorted(entries.items())
               if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
    return {"topic": name, "partitions": parts, "replication_factor": max((len(p["replicas"]) for p in parts),
                                                                          default=0),
            "messages": sum((p["high"] or 0) - (p["low"] or 0) for p in parts), "configs": configs}


def _offsets(session: Session, admin, specs: dict) -> dict[tuple[str, int], int]:
    if not specs:
        return {}
    futs = admin.list_offsets(specs, request_timeout=session.timeout)
    return {(tp.topic, tp.partition): _result(f, session, f"offsets of {tp.topic}-{tp.partition}").offset
            for tp, f in futs.items()}


def alter_topic(session: Session, name: str, *, partitions: int | None = None, set_configs: dict | None = None,
                delete_configs: Iterable[str] = (), validate_only: bool = False) -> list[str]:
    """More partitions and/or configs set or deleted; returns what changed, in words."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions

    check_topic(name)
    set_configs = set_configs or {}
    delete_configs = list(delete_configs)
    _md, t = _topic_md(session, name)
    admin = session.admin()
    done = []
    if partitions is not None:
        have = len(t.partitions)
        if partitions < have:
            raise InputError(f"topic {name} has {have} partitions; Kafka cannot remove partitions "
                             f"(asked for {partitions})", hint="a topic with fewer partitions is a new topic")
        if partitions > MAX_PARTITIONS:
            raise InputError(f"--partitions {partitions}: use at most {MAX_PARTITIONS}")
        if partitions > have:
            fut = admin.create_partitions([NewPartitions(name, partitions)], validate_only=validate_only,
                                          operation_timeout=session.timeout,
                                          request_timeout=session.timeout)[name]
            _result(fut, session, f"add partitions to topic {name}")
            done.append(f"partitions {have} -> {partitions}")
    if set_configs or delete_configs:
        ops = [ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET) for k, v in set_configs.items()]
        ops += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in delete_configs]
        res = ConfigResource("TOPIC", name, incremental_configs=ops)
        fut = admin.incremental_alter_configs([res], validate_only=validate_only,
                                              request_timeout=session.timeout)[res]
        _result(fut, session, f"alter the configs of topic {name}")
        done += [f"{k}={v}" for k, v in set_configs.items()] + [f"{k} deleted (default again)" for k in delete_configs]
    return done


def delete_topic(session: Session, name: str) -> None:
    check_topic(name)
    _topic_md(session, name)
    fut = session.admin().delete_topics([name], operation_timeout=session.timeout,
                                        request_timeout=session.timeout)[name]
    _result(fut, session, f"delete topic {name}")


# -- inventory topics: observe, diff (pure), apply ------------------------------------------------------

def config_str(value) -> str:
    """An inventory config value as Kafka reports it (true/false for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    config: dict[str, str]


@dataclass
class TopicChange:
    topic: str
    action: str                                   # create | alter | unchanged
    partitions: tuple[int | None, int]            # (now, wanted)
    replication_factor: int | None
    config: dict[str, tuple[str | None, str]]     # key -> (now, wanted), only the keys that change

    def describe(self) -> str:
        if self.action == "create":
            rf = self.replication_factor or "the brokers' default"
            cfg = ", ".join(f"{k}={v}" for k, (_, v) in self.config.items())
            n = self.partitions[1]
            return f"create topic {self.topic}: {n} partition{'s' if n != 1 else ''}, replication {rf}" + \
                (f", {cfg}" if cfg else "")
        if self.action == "alter":
            what = []
            if self.partitions[0] != self.partitions[1]:
                what.append(f"partitions {self.partitions[0]} -> {self.partitions[1]}")
            what += [f"{k} {now if now is not None else '(default)'} -> {v}" for k, (now, v) in self.config.items()]
            return f"alter topic {self.topic}: " + ", ".join(what)
        return f"topic {self.topic}: as in the inventory"

    def as_dict(self) -> dict:
        return {"topic": self.topic, "action": self.action, "partitions": list(self.partitions),
                "replication_factor": self.replication_factor,
                "config": {k: {"now": a, "wanted": b} for k, (a, b) in self.config.items()}}


@dataclass
class TopicPlan:
    changes: list[TopicChange]
    problems: list[str]
    observed: bool = True        # False: the cluster's topics could not be read (not running yet)

    @property
    def pending(self) -> list[TopicChange]:
        return [c for c in self.changes if c.action != "unchanged"]

    def lines(self) -> list[str]:
        out = [c.describe() for c in self.pending]
        if not self.observed and out:
            out.append("(the cluster is not running: its existing topics are compared once it is ready)")
        return out

    def as_dict(self) -> list[dict]:
        return [c.as_dict() for c in self.changes]


def diff_topics(wanted: dict[str, TopicSpec], now: dict[str, TopicState] | None) -> TopicPlan:
    """What `up` does to the inventory's topics, given the cluster's (None: not readable,
    every topic is taken as new). Never deletes, never shrinks: a change Kafka cannot make
    is a problem naming the topic."""
    changes, problems = [], []
    for name, t in wanted.items():
        want_cfg = {k: config_str(v) for k, v in t.config.items()}
        have = (now or {}).get(name)
        if have is None:
            changes.append(TopicChange(name, "create", (None, t.partitions), t.replication_factor,
                                       {k: (None, v) for k, v in want_cfg.items()}))
            continue
        if t.partitions < have.partitions:
            problems.append(f"topics.{name}.partitions: {t.partitions} is fewer than the {have.partitions} the "
                            "topic has; Kafka cannot remove partitions (raise it back, or create a new topic)")
        if t.replication_factor and t.replication_factor != have.replication_factor:
            problems.append(f"topics.{name}.replication_factor: {t.replication_factor} differs from the topic's "
                            f"{have.replication_factor}; kops does not reassign replicas (set it to "
                            f"{have.replication_factor}, or create a new topic)")
        cfg = {k: (have.config.get(k), v) for k, v in want_cfg.items() if have.config.get(k) != v}
        grow = max(t.partitions, have.partitions)
        action = "alter" if cfg or grow != have.partitions else "unchanged"
        changes.append(TopicChange(name, action, (have.partitions, grow), t.replication_factor, cfg))
    return TopicPlan(changes, problems, observed=now is not None)


def observe_topics(session: Session, names: Iterable[str]) -> dict[str, TopicState]:
    """The inventory's topics that exist: partitions, replication factor, their config values."""
    from confluent_kafka.admin import ConfigResource

    md = _metadata(session)
    admin = session.admin()
    found = {n: md.topics[n] for n in names if n in md.topics and md.topics[n].error is None}
    if not found:
        return {}
    res = {n: ConfigResource("TOPIC", n) for n in found}
    futs = admin.describe_configs(list(res.values()), request_timeout=session.timeout)
    out = {}
    for n, t in found.items():
        entries = _result(futs[res[n]], session, f"describe the configs of topic {n}")
        out[n] = TopicState(len(t.partitions), max((len(p.replicas) for p in t.partitions.values()), default=0),
                            {k: e.value for k, e in entries.items()})
    return out


def plan_topics(session: Session, wanted: dict[str, TopicSpec], *, validate: bool = True) -> TopicPlan:
    """The diff against the running cluster; with ``validate`` Kafka itself checks every
    change (validate_only: configs, partition counts) so that a refusal comes before
    anything changes. Raises InputError (exit 2) naming the topics on any problem."""
    plan = diff_topics(wanted, observe_topics(session, wanted))
    problems = list(plan.problems)
    if validate and not problems:
        for c in plan.pending:
            try:
                _apply_one(session, c, validate_only=True)
            except InputError as exc:
                problems.append(f"topics.{c.topic}: Kafka refuses it: {exc.message.split(': ', 1)[-1]}")
    if problems:

        raise SpecError("topics", problems)
    return plan


def _apply_one(session: Session, c: TopicChange, *, validate_only: bool = False) -> None:
    if c.action == "create":
        create_topic(session, c.topic, c.partitions[1], c.replication_factor,
                     {k: v for k, (_, v) in c.config.items()}, validate_only=validate_only)
    elif c.action == "alter":
        alter_topic(session, c.topic, partitions=c.partitions[1] if c.partitions[1] != c.partitions[0] else None,
                    set_configs={k: v for k, (_, v) in c.config.items()}, validate_only=validate_only)


def sync_topics(session: Session, wanted: dict[str, TopicSpec], log=lambda m: None) -> TopicPlan:
    """Make the cluster's topics match the inventory (create, grow, configs); exit 2 on a
    change Kafka cannot make, before any topic is touched."""
    plan = plan_topics(session, wanted)
    for c in plan.pending:
        _apply_one(session, c)
        log(c.describe())
    return plan


def parse_time(text: str) -> int:
    """Milliseconds since the epoch from digits (ms) or an ISO 8601 date/time (UTC unless
    it says otherwise)."""
    text = text.strip()
    if re.fullmatch(r"[0-9]{1,16}", text):
        return int(text)
    try:
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{_short(text)} is not a time",
                         hint="milliseconds since the epoch, or ISO 8601 like 2026-12-01T18:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)


# -- consumer groups --------------------------------------------------------------------------------------

def list_groups(session: Session) -> list[dict]:
    res = _result(session.admin().list_consumer_groups(request_timeout=session.timeout), session,
                  "list the consumer groups")
    return sorted(({"group": g.group_id, "state": g.state.name if g.state is not None else "UNKNOWN",
                    "simple": g.is_simple_consumer_group} for g in res.valid), key=lambda r: r["group"])


def _group_offsets(session: Session, admin, group: str) -> dict[tuple[str, int], int]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    futs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                             request_timeout=session.timeout)
    res = _result(futs[group], session, f"committed offsets of group {group}")
    return {(tp.topic, tp.partition): tp.offset for tp in res.topic_partitions or [] if tp.offset >= 0}


def describe_group(session: Session, group: str) -> dict:
    """Members (with their partitions) and, per partition with a committed offset, that
    offset, the partition's end offset and the lag."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin = session.admin()
    desc = _result(admin.describe_consumer_groups([group], request_timeout=session.timeout)[group], session,
                   f"describe group {group}")
    committed = _group_offsets(session, admin, group)
    state = desc.state.name if desc.state is not None else "UNKNOWN"
    if state == "DEAD" and not committed:
        raise NotFoundError(f"consumer group {group} does not exist", hint="kops group list")
    members = [{"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                "partitions": sorted(f"{tp.topic}-{tp.partition}" for tp in
                                     (m.assignment.topic_partitions if m.assignment else []))}
               for m in desc.members]
    owner = {p: m["client_id"] for m in members for p in m["partitions"]}
    # every partition of the topics the group reads (committed or assigned), so that a
    # partition it never committed shows too: its lag counts from the partition's start
    topics = {t for t, _ in committed} | {p.rsplit("-", 1)[0] for m in members for p in m["partitions"]}
    md = _metadata(session)
    tps = sorted({(t, p) for t in topics if t in md.topics for p in md.topics[t].partitions} | set(committed))
    end = _offsets(session, admin, {TopicPartition(t, p): OffsetSpec.latest() for t, p in tps})
    low = _offsets(session, admin, {TopicPartition(t, p): OffsetSpec.earliest() for t, p in tps
                                    if (t, p) not in committed})
    rows = []
    for t, p in tps:
        off, e = committed.get((t, p)), end.get((t, p))
        lag = None if e is None else max(0, e - (off if off is not None else low.get((t, p), 0)))
        rows.append({"topic": t, "partition": p, "committed": off, "end": e, "lag": lag,
                     "member": owner.get(f"{t}-{p}")})
    return {"group": group, "state": state, "coordinator": desc.coordinator.id if desc.coordinator else None,
            "members": members, "offsets": rows, "lag": sum(r["lag"] or 0 for r in rows)}


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    partition: int
    committed: int | None
    low: int
    high: int
    at_time: int | None = None     # offset of the first message at/after --to-datetime (-1/None: none)


def plan_reset(parts: list[PartitionOffsets], to: str, value: int | None = None) -> list[dict]:
    """New committed offset of each partition (pure): --to-earliest, --to-latest,
    --to-offset N (kept within the partition's watermarks), --to-datetime (the first
    message at or after it; none: the end)."""
    out = []
    for p in sorted(parts, key=lambda p: (p.topic, p.partition)):
        if to == "earliest":
            new = p.low
        elif to == "latest":
            new = p.high
        elif to == "offset":
            new = min(max(int(value), p.low), p.high)
        elif to == "datetime":
            new = p.high if p.at_time is None or p.at_time < 0 else min(max(p.at_time, p.low), p.high)
        else:
            raise ValueError(to)
        out.append({"topic": p.topic, "partition": p.partition, "current": p.committed, "new": new,
                    "lag_after": p.high - new})
    return out


def reset_offsets(session: Session, group: str, to: str, *, value: int | None = None,
                  topics: list[str] = (), execute: bool = False) -> dict:
    """Plan (and with ``execute`` apply) new committed offsets for ``group``: the partitions
    of ``topics``, or every partition the group has offsets for. Refused (exit 2) while the
    group has active members: they would overwrite the new offsets."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin = session.admin()
    desc = _result(admin.describe_consumer_groups([group], request_timeout=session.timeout)[group], session,
                   f"describe group {group}")
    committed = _group_offsets(session, admin, group)
    tps: list[tuple[str, int]] = []
    for t in topics:
        check_topic(t, "--topic")
        _md, tm = _topic_md(session, t)
        tps += [(t, p) for p in sorted(tm.partitions)]
    if not topics:
        tps = sorted(committed)
    if not tps:
        raise InputError(f"group {group} has no committed offsets: name the topics to reset",
                         hint=f"kops group reset-offsets {group} --topic TOPIC ...")
    spec = {TopicPartition(t, p): OffsetSpec.earliest() for t, p in tps}
    low = _offsets(session, admin, spec)
    high = _offsets(session, admin, {TopicPartition(t, p): OffsetSpec.latest() for t, p in tps})
    at = {}
    if to == "datetime":
        at = _offsets(session, admin, {TopicPartition(t, p): OffsetSpec.for_timestamp(value) for t, p in tps})
    rows = plan_reset([PartitionOffsets(t, p, committed.get((t, p)), low[(t, p)], high[(t, p)], at.get((t, p)))
                       for t, p in tps], to, value)
    state = desc.state.name if desc.state is not None else "UNKNOWN"
    active = len(desc.members)
    if execute:
        if active or state not in ("EMPTY", "DEAD"):
            raise InputError(f"group {group} has {active} active member(s) (state {state}): they would overwrite "
                             "the new offsets", hint="stop the group's consumers first; nothing was changed")
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(r["topic"], r["partition"], r["new"])
                                                   for r in rows])
        _result(admin.alter_consumer_group_offsets([req], request_timeout=session.timeout)[group], session,
                f"reset the offsets of group {group}")
    return {"group": group, "state": state, "members": active, "executed": execute, "partitions": rows}


def write_client_files(dest: str | Path, bootstrap: str, settings: dict[str, str]) -> dict[str, Path]:
    """client.properties, librdkafka.conf and client.json in ``dest`` (made 0700 if new), and
    the cluster's CA as ca.pem there when it has one. Files that hold a password are 0600,
    the others 0644. Returns file name -> path."""
    folder = Path(dest)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"--write {dest}: cannot create the folder: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise InputError(f"--write {dest}: not a folder")
    written = {}
    ca = settings.get("ssl.ca.location")
    if ca:
        target = folder / "ca.pem"
        if Path(ca).resolve() != target.resolve():
            written["ca.pem"] = paths.write_output(target, paths.read_input(ca, "the CA file", 1 << 20),
                                                   "--write", mode=0o644)
        written["ca.pem"] = target
        ca = str(target.resolve())
    for fname, (text, secret) in client_files(bootstrap, settings, ca).items():
        written[fname] = paths.write_output(folder / fname, text, "--write", mode=0o600 if secret else 0o644)
    return written
