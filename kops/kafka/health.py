"""Client-side probes, as the field checks a cluster (waits with deadlines: kops.gates).

* ZooKeeper: ``srvr`` over the client port (Mode: leader | follower | standalone).
* Kafka: metadata through the clients' bootstrap address (registered brokers, topics,
  partitions with leader and ISR), the active controller (describe cluster), and a
  produce/consume round trip through a real client (librdkafka via confluent-kafka).

A probe reports what it saw; it never turns an unreadable value into a permissive
default (an unknown ``min.insync.replicas`` stops a roll, it does not become 1).
"""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from kops.core.errors import KopsError

CHECK_TOPIC = "__kops_check"


from kops.core.errors import NotYet  # noqa: E402,F401 - the probes' word, kept here for their callers


def four_letter(host: str, port: int, word: str = "srvr", timeout: float = 3.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def zk_mode(srvr_output: str) -> str | None:
    for line in srvr_output.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def zk_connections(srvr_output: str) -> int | None:
    """The client connections a ZooKeeper node reports in ``srvr`` (the asking one included)."""
    for line in srvr_output.splitlines():
        if line.startswith("Connections:"):
            try:
                return int(line.split(":", 1)[1].strip())
            except ValueError:
                return None
    return None


@dataclass
class KafkaHealth:
    brokers: dict[int, str] = field(default_factory=dict)   # id -> host:port
    controller: int | None = None
    partitions: int = 0
    under_replicated: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    error: str | None = None
    registration_unknown: bool = False   # the registrations' source (ZooKeeper) could not be read
    from_zookeeper: bool = False         # brokers and controller as ZooKeeper holds them (kops.status)

    def as_dict(self) -> dict:
        return {"brokers": {str(k): v for k, v in sorted(self.brokers.items())},
                "controller": self.controller, "partitions": self.partitions,
                "under_replicated": self.under_replicated, "offline": self.offline,
                "error": self.error}


@dataclass(frozen=True)
class Client:
    """Where and how kops's own client connects: the bootstrap servers, plus the security
    settings of a secure cluster (librdkafka names: security.protocol, sasl.*, ssl.*)."""

    bootstrap: str
    settings: tuple[tuple[str, str], ...] = ()

    def at(self, bootstrap: str) -> "Client":
        return Client(bootstrap, self.settings)

    def __str__(self) -> str:
        return self.bootstrap


def _quiet_conf(bootstrap: "str | Client", timeout: float) -> dict:
    extra = dict(bootstrap.settings) if isinstance(bootstrap, Client) else {}
    return {"bootstrap.servers": str(bootstrap), "socket.timeout.ms": int(timeout * 1000),
            "log_level": 0, "logger": _NullLogger(), **extra}


class _NullLogger:
    """librdkafka logs connection refusals while a cluster starts; the waits report instead."""

    def log(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *a, **k: None


def kafka_health(bootstrap: str, timeout: float = 5.0) -> KafkaHealth:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    h = KafkaHealth()
    try:
        admin = AdminClient(_quiet_conf(bootstrap, timeout))
        md = admin.list_topics(timeout=timeout)
        h.brokers = {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}
        for t in md.topics.values():
            for p in t.partitions.values():
                h.partitions += 1
                name = f"{t.topic}-{p.id}"
                if p.leader < 0:
                    h.offline.append(name)
                elif len(p.isrs) < len(p.replicas):
                    h.under_replicated.append(name)
        # the metadata's controller (ZooKeeper mode: the active one; KRaft: a broker, the
        # quorum-state files tell the leader). Not DescribeCluster: librdkafka 2.16 can abort
        # the whole process parsing its response from a cluster mid-migration (an assert)
        h.controller = md.controller_id if md.controller_id >= 0 else None
    except KafkaException as exc:
        h.error = kafka_error(exc)
    return h


# what a node's last log lines say, in words, when it died of a cause kops knows
KNOWN_CAUSES = (
    (r"No MetadataVersion with feature level (\d+)",
     "the cluster's finalized metadata.version (feature level {0}) is newer than this Kafka version supports, and "
     "a finalized metadata.version cannot be lowered: go back to the kafka.version the cluster ran"),
    (r"UnsupportedClassVersionError",
     "the node's Java is older than this Kafka version needs (Kafka 4.x: Java 17+)"),
    (r"InconsistentClusterIdException|does not match the cluster id",
     "the node's data belongs to another Kafka cluster id (kafka.cluster_id, or data of another cluster)"),
    (r"BindException: Address already in use",
     "a port of the node is already taken on its host"),
)


def known_cause(text: str) -> str | None:
    """The cause of a node's failure in words when its log lines show one kops knows."""
    import re

    for pattern, words in KNOWN_CAUSES:
        m = re.search(pattern, text or "")
        if m:
            return words.format(*m.groups())
    return None


def kafka_error(exc: Exception) -> str:
    """A librdkafka error in words (its name and reason), not the KafkaError repr."""
    err = exc.args[0] if exc.args else None
    return err.str() if hasattr(err, "str") else f"{exc.__class__.__name__}: {exc}"


def round_trip(bootstrap: str, replication: int, timeout: float = 20.0) -> float:
    """Produce one message to ``__kops_check`` and read it back; returns seconds taken.
    Raises NotYet with the reason when the cluster cannot do it yet."""
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    t0 = time.monotonic()
    admin = AdminClient(_quiet_conf(bootstrap, 5))
    try:
        md = admin.list_topics(timeout=10)
        if CHECK_TOPIC not in md.topics:
            fut = admin.create_topics([NewTopic(CHECK_TOPIC, 1, replication)], operation_timeout=15)
            try:
                fut[CHECK_TOPIC].result(timeout=20)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise NotYet(f"cannot create the check topic: {kafka_error(exc)}") from exc
    except KafkaException as exc:
        raise NotYet(f"round trip: {kafka_error(exc)}") from exc
    except FutureTimeout as exc:
        raise NotYet("round trip: the check topic was not created in time") from exc
    payload = uuid.uuid4().hex.encode()
    delivered = {}
    prod = Producer({**_quiet_conf(bootstrap, 10), "acks": "all", "message.timeout.ms": int(timeout * 1000)})
    prod.produce(CHECK_TOPIC, payload, partition=0,
                 on_delivery=lambda err, msg: delivered.update(err=err, offset=msg.offset() if msg else None))
    prod.flush(timeout)
    if delivered.get("err") or delivered.get("offset") is None:
        raise NotYet(f"produce to {CHECK_TOPIC} failed: {delivered.get('err') or 'not delivered in time'}")
    cons = Consumer({**_quiet_conf(bootstrap, 10), "group.id": f"kops-check-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False})
    try:
        cons.assign([TopicPartition(CHECK_TOPIC, 0, delivered["offset"])])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = cons.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.value() == payload:
                return time.monotonic() - t0
        raise NotYet(f"consumed nothing from {CHECK_TOPIC} within {timeout:.0f} s")
    finally:
        cons.close()


# -- rolling restarts and smoke checks -------------------------------------------------------

def partitions(bootstrap: str, timeout: float = 5.0) -> list[tuple[str, int, list[int], list[int], int]]:
    """(topic, partition, replicas, isr, leader) of every partition."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient(_quiet_conf(bootstrap, timeout)).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise NotYet(f"metadata: {kafka_error(exc)}") from exc
    return [(t.topic, p.id, list(p.replicas), list(p.isrs), p.leader)
            for t in md.topics.values() for p in t.partitions.values()]


def min_isr(bootstrap: str, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Effective ``min.insync.replicas`` of each topic (topic config, else the broker default)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(_quiet_conf(bootstrap, timeout))
    out = {}
    if not topics:
        return out
    futs = admin.describe_configs([ConfigResource("TOPIC", t) for t in topics], request_timeout=timeout)
    for res, fut in futs.items():
        try:
            cfg = fut.result(timeout=timeout)
            out[res.name] = int(cfg["min.insync.replicas"].value)
        except (KafkaException, FutureTimeout, KeyError, ValueError) as exc:  # fail closed: stops the roll
            raise NotYet(f"cannot read min.insync.replicas of topic {res.name}: "
                         f"{exc.__class__.__name__}: {exc}") from exc
    return out


def restart_blockers(bootstrap: str, broker_id: int) -> list[str]:
    """Partitions that would drop below min.insync.replicas if ``broker_id`` went down now
    (Strimzi's rule). Partitions with a single replica cannot be helped and are not listed."""
    parts = partitions(bootstrap)
    mins = min_isr(bootstrap, sorted({t for t, *_ in parts}))
    out = []
    for topic, pid, replicas, isr, _leader in parts:
        if broker_id in isr and len(replicas) > 1 and len(isr) - 1 < mins[topic]:
            out.append(f"{topic}-{pid} (ISR {isr}, min.insync.replicas {mins[topic]})")
    return out


def ensure_scram_users(bootstrap, mechanism: str, users: dict[str, str], timeout: float = 30.0) -> list[str]:
    """Create the SCRAM users that do not exist yet (an existing user's password is left
    alone); returns the names created."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    admin = AdminClient(_quiet_conf(bootstrap, 10))
    mech = getattr(ScramMechanism, mechanism.replace("-", "_"))
    try:
        have = set()
        described = admin.describe_user_scram_credentials(list(users), request_timeout=timeout)
        for name, fut in described.items():
            try:
                if fut.result(timeout=timeout + 5).scram_credential_infos:
                    have.add(name)
            except KafkaException as exc:
                if "RESOURCE_NOT_FOUND" not in str(exc) and "not found" not in str(exc).lower():
                    raise
        todo = [UserScramCredentialUpsertion(u, ScramCredentialInfo(mech, 8192), pw.encode())
                for u, pw in sorted(users.items()) if u not in have]
        if todo:
            for fut in admin.alter_user_scram_credentials(todo, request_timeout=timeout).values():
                fut.result(timeout=timeout + 5)
    except KafkaException as exc:
        raise KopsError(f"could not create the SCRAM users {', '.join(users)}: {kafka_error(exc)}") from exc
    return [u.user for u in todo]


def drop_topics(bootstrap: str, topics: list[str], timeout: float = 30.0, *, listed: bool = True) -> None:
    """Delete kops's own topics (the controller has accepted when this returns) and, with
    ``listed``, wait until the brokers' metadata no longer lists them either."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # the socket outwaits the deletion itself (a loaded broker may take most of ``timeout``)
    admin = AdminClient(_quiet_conf(bootstrap, timeout + 5))
    try:
        present = [t for t in topics if t in admin.list_topics(timeout=10).topics]
        if not present:
            return
        for name, fut in admin.delete_topics(present, operation_timeout=timeout).items():
            try:
                fut.result(timeout=timeout + 5)
            except KafkaException as exc:
                if "UNKNOWN_TOPIC" not in str(exc):
                    raise KopsError(f"could not delete kops's topic {name}: {kafka_error(exc)}") from exc
        if not listed:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not set(present) & set(admin.list_topics(timeout=10).topics):
                return
            time.sleep(0.2)
    except KafkaException as exc:
        raise KopsError(f"could not delete kops's topics {', '.join(topics)}: {kafka_error(exc)}") from exc
    raise KopsError(f"kops's topics {', '.join(present)} were still listed {timeout:.0f} s after their deletion")


def smoke(bootstrap: str, replication: int, messages: int = 100, timeout: float = 30.0) -> dict:
    """Produce ``messages`` to a fresh topic with acks=all and read every one back."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"__kops_smoke_{uuid.uuid4().hex[:8]}"
    admin = AdminClient(_quiet_conf(bootstrap, 10))
    t0 = time.monotonic()
    admin.create_topics([NewTopic(topic, 1, replication)], operation_timeout=15)[topic].result(timeout=20)
    try:
        prod = Producer({**_quiet_conf(bootstrap, 10), "acks": "all", "enable.idempotence": True})
        errors = []
        for i in range(messages):
            prod.produce(topic, f"kops-{i}".encode(), on_delivery=lambda e, m: e and errors.append(str(e)))
        left = prod.flush(timeout)
        produced = time.monotonic() - t0
        if errors or left:
            raise KopsError(f"produce failed: {errors[:3] or f'{left} not delivered in {timeout:.0f} s'}")
        cons = Consumer({**_quiet_conf(bootstrap, 10), "group.id": f"kops-smoke-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
        got = set()
        try:
            cons.subscribe([topic])
            deadline = time.monotonic() + timeout
            while len(got) < messages and time.monotonic() < deadline:
                m = cons.poll(0.5)
                if m is not None and not m.error():
                    got.add(m.value())
        finally:
            cons.close()
        if len(got) != messages:
            raise KopsError(f"consumed {len(got)} of {messages} messages from {topic} within {timeout:.0f} s")
        return {"topic": topic, "replication": replication, "messages": messages,
                "produce_seconds": round(produced, 3), "total_seconds": round(time.monotonic() - t0, 3)}
    finally:
        drop_topics(bootstrap, [topic])
