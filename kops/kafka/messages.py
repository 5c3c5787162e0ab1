"""Messages: `kops produce` and `kops consume` through confluent-kafka, and the pure parts
they rest on (the kcat-like format template, where a consumer starts). Connections,
topics and groups are :mod:`kops.data`'s."""

from __future__ import annotations

import re
import time
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from kops.kafka.data import (AUTH_CODES, DENIED_CODES, Session, _built, _code, _err, _metadata, _offsets, _topic_md,
                             auth_failure, check_topic, parse_time)
from kops.core.errors import InputError, KopsError, NotFoundError, WaitTimeout
from kops.model.spec import _short


# -- produce ----------------------------------------------------------------------------------------------

@dataclass
class Delivery:
    index: int                 # 1-based: the message's line
    partition: int
    offset: int
    error: str | None = None


@dataclass
class ProduceResult:
    topic: str
    sent: int = 0
    delivered: int = 0
    errors: list[str] = field(default_factory=list)
    partitions: set[int] = field(default_factory=set)
    seconds: float = 0.0
    denied: tuple[str, str] | None = None      # (error name, text): the first authorization refusal


def _auto_create(session: Session, md) -> bool | None:
    """The brokers' auto.create.topics.enable (None: not readable, e.g. no ACL to read it)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource

    if not md.brokers:
        return None
    res = ConfigResource("BROKER", str(min(md.brokers)))
    try:
        fut = session.admin().describe_configs([res], request_timeout=session.timeout)[res]
        entry = fut.result(timeout=session.timeout + 5).get("auto.create.topics.enable")
    except (KafkaException, FutureTimeout):
        return None
    return None if entry is None else entry.value == "true"


def split_line(line: str, key_separator: str | None) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line: split at the first separator; no separator, no key."""
    if key_separator:
        key, sep, value = line.partition(key_separator)
        if sep:
            return key.encode(), value.encode()
    return None, line.encode()


def produce(session: Session, topic: str, lines: Iterable[str], *, key_separator: str | None = None,
            headers: list[tuple[str, str]] = (), partition: int | None = None, acks: str = "all",
            compression: str = "none", on_delivery=None) -> ProduceResult:
    from confluent_kafka import KafkaException, Producer

    check_topic(topic)
    md = _metadata(session, topic)
    t = md.topics.get(topic)
    exists = t is not None and t.error is None
    if not exists and _auto_create(session, md) is False:
        raise NotFoundError(f"topic {topic} does not exist, and the cluster does not create topics on first use "
                            "(auto.create.topics.enable=false)", hint=f"kops topic create {topic}")
    if exists and partition is not None and partition not in t.partitions:
        raise InputError(f"--partition {partition}: topic {topic} has partitions 0-{len(t.partitions) - 1}")
    prod = _built(Producer, session.conf(**{
        "acks": acks, "compression.type": compression, "linger.ms": 5,
        "message.timeout.ms": int(session.timeout * 1000),
        # a missing topic fails in seconds, not after the whole message timeout
        "topic.metadata.propagation.max.ms": 10000}))
    res = ProduceResult(topic)
    t0 = time.monotonic()

    def done(index):
        def cb(err, msg):
            if err is not None:
                res.errors.append(err.str())
                if err.name() in DENIED_CODES and res.denied is None:
                    res.denied = (err.name(), err.str())
                d = Delivery(index, -1, -1, err.str())
            else:
                res.delivered += 1
                res.partitions.add(msg.partition())
                d = Delivery(index, msg.partition(), msg.offset())
            if on_delivery:
                on_delivery(d)
        return cb

    hdrs = [(k, v.encode()) for k, v in headers]
    kw = {"partition": partition} if partition is not None else {}
    try:
        for line in lines:
            key, value = split_line(line, key_separator)
            res.sent += 1
            while True:
                try:
                    prod.produce(topic, value, key, headers=hdrs or None, on_delivery=done(res.sent), **kw)
                    break
                except BufferError:
                    prod.poll(0.5)
            prod.poll(0)
            if res.errors or session._quiet.auth:
                break
    except KafkaException as exc:
        if _code(exc) in AUTH_CODES:
            raise auth_failure(session.bootstrap, session.settings, _err(exc)) from None
        raise KopsError(f"produce to {topic}: {_err(exc)}") from None
    finally:
        # flushed in short steps: refused credentials (error_cb) end it at once
        end = time.monotonic() + session.timeout + 5
        while True:
            left = prod.flush(min(0.5, max(end - time.monotonic(), 0.0)))
            if not left or time.monotonic() >= end or session._quiet.auth or res.denied:
                break
    res.seconds = time.monotonic() - t0
    session.check(poll=False)
    if res.denied:
        raise session.denied(f"produce to {topic}", *res.denied)
    if left:
        res.errors.append(f"{left} message(s) not delivered within {session.timeout:.0f} s" + session.why())
    if res.errors and not exists and any("nknown topic" in e for e in res.errors):
        raise NotFoundError(f"topic {topic} does not exist, and the cluster did not create it on first use "
                            "(auto.create.topics.enable=false)", hint=f"kops topic create {topic}")
    return res


# -- consume ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def as_dict(self) -> dict:
        text = (lambda b: None if b is None else b.decode("utf-8", errors="replace"))
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset,
                "timestamp": self.timestamp, "key": text(self.key), "value": text(self.value),
                "headers": [[k, text(v)] for k, v in self.headers]}


# The consume format template, like kcat's -f. Fields: %t topic, %p partition, %o offset,
# %T timestamp (ms since the epoch), %k key, %v or %s value, %K key length, %S value length,
# %h headers (k=v,k2=v2), %% a percent sign. Escapes: \n \t \r \\ \0. Nothing is added:
# end the template with \n for one line per message.
FORMAT_FIELDS = {"t": "topic", "p": "partition", "o": "offset", "T": "timestamp", "k": "key", "v": "value",
                 "s": "value", "K": "key_length", "S": "value_length", "h": "headers"}
FORMAT_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0"}
DEFAULT_FORMAT = "%v\\n"


def parse_format(template: str) -> list[str | tuple[str]]:
    """The template as literal strings and (field,) tuples; InputError at an unknown %X or \\X."""
    out: list = []
    lit = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch in "%\\" and i + 1 >= len(template):
            raise InputError(f"-f {template!r}: ends with a lone {ch!r}",
                             hint="write %% for a percent sign, \\\\ for a backslash")
        if ch == "%":
            nxt = template[i + 1]
            if nxt == "%":
                lit.append("%")
            elif nxt in FORMAT_FIELDS:
                if lit:
                    out.append("".join(lit))
                    lit = []
                out.append((FORMAT_FIELDS[nxt],))
            else:
                raise InputError(f"-f {template!r}: %{nxt} is not a field (at position {i + 1})",
                                 hint="fields: " + ", ".join(f"%{k} {v}" for k, v in FORMAT_FIELDS.items())
                                      + ", %% a percent sign")
            i += 2
        elif ch == "\\":
            nxt = template[i + 1]
            if nxt not in FORMAT_ESCAPES:
                raise InputError(f"-f {template!r}: \\{nxt} is not an escape (at position {i + 1})",
                                 hint="escapes: \\n \\t \\r \\\\ \\0")
            lit.append(FORMAT_ESCAPES[nxt])
            i += 2
        else:
            lit.append(ch)
            i += 1
    if lit:
        out.append("".join(lit))
    return out


def render(parts: list, rec: Record) -> bytes:
    """One message through a parsed template (bytes: keys and values are written as they are)."""
    out = bytearray()
    for part in parts:
        if isinstance(part, str):
            out += part.encode()
            continue
        f = part[0]
        if f == "key":
            out += rec.key or b""
        elif f == "value":
            out += rec.value or b""
        elif f == "key_length":
            out += str(len(rec.key) if rec.key is not None else -1).encode()
        elif f == "value_length":
            out += str(len(rec.value) if rec.value is not None else -1).encode()
        elif f == "headers":
            out += b",".join(k.encode() + b"=" + (v or b"") for k, v in rec.headers)
        elif f == "timestamp":
            out += str(rec.timestamp if rec.timestamp is not None else -1).encode()
        else:
            out += str(getattr(rec, f)).encode()
    return bytes(out)


@dataclass(frozen=True)
class Start:
    kind: str          # beginning | end | offset | relative | timestamp | stored
    value: int = 0


def parse_start(text: str) -> Start:
    """--from: beginning | end | OFFSET | -N (N before the end) | @TIME (ms or ISO 8601) | stored."""
    t = text.strip().lower()
    if t in ("beginning", "earliest", "start", "oldest"):
        return Start("beginning")
    if t in ("end", "latest", "newest"):
        return Start("end")
    if t in ("stored", "committed"):
        return Start("stored")
    if re.fullmatch(r"[0-9]{1,19}", t):
        return Start("offset", int(t))
    if re.fullmatch(r"-[0-9]{1,19}", t):
        return Start("relative", int(t[1:]))
    if t.startswith("@"):
        return Start("timestamp", parse_time(text.strip()[1:]))
    raise InputError(f"--from {_short(text)} is not a start position",
                     hint="beginning, end, an offset (42), -N for the last N messages of each partition, "
                          "or @TIME (ms since the epoch or ISO 8601)")


def start_offset(start: Start, low: int, high: int, at_time: int | None = None) -> int:
    """Where a partition is read from, within its [low, high] watermarks (pure)."""
    if start.kind == "beginning":
        return low
    if start.kind == "end":
        return high
    if start.kind == "offset":
        return min(max(start.value, low), high)
    if start.kind == "relative":
        return max(low, high - start.value)
    if start.kind == "timestamp":
        return high if at_time is None or at_time < 0 else min(max(at_time, low), high)
    raise ValueError(start.kind)


@dataclass
class ConsumeStats:
    received: int = 0
    reason: str = ""           # count | idle | end | interrupted
    partitions: list[int] = field(default_factory=list)


def _positions(session: Session, topic: str, pids: list[int], start: Start) -> dict[int, int]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin = session.admin()
    low = _offsets(session, admin, {TopicPartition(topic, p): OffsetSpec.earliest() for p in pids})
    high = _offsets(session, admin, {TopicPartition(topic, p): OffsetSpec.latest() for p in pids})
    at = {}
    if start.kind == "timestamp":
        at = _offsets(session, admin, {TopicPartition(topic, p): OffsetSpec.for_timestamp(start.value)
                                       for p in pids})
    return {p: start_offset(start, low[(topic, p)], high[(topic, p)], at.get((topic, p))) for p in pids}


def consume(session: Session, topic: str, *, start: Start | None = None, group: str | None = None,
            partitions: list[int] | None = None, count: int | None = None, idle: float | None = None,
            until_end: bool = False, stats: ConsumeStats | None = None) -> Iterator[Record]:
    """Messages of ``topic`` as Records, until ``count`` messages, ``idle`` seconds without
    one, the end of every partition (``until_end``), or the caller stops (Ctrl-C). The
    consumer is always closed; with a group, the offsets of what was yielded are committed.

    Without a group, every partition (or ``partitions``) is read from ``start`` (default:
    the beginning) and nothing is committed. With a group, the group's committed offsets
    are the start (new group: the beginning) unless ``start`` says otherwise."""
    from confluent_kafka import OFFSET_STORED, Consumer, KafkaException, TopicPartition

    check_topic(topic)
    stats = stats if stats is not None else ConsumeStats()
    _md, t = _topic_md(session, topic)
    pids = sorted(t.partitions)
    if partitions:
        bad = sorted(set(partitions) - set(pids))
        if bad:
            raise InputError(f"--partition {', '.join(map(str, bad))}: topic {topic} has partitions "
                             f"0-{len(pids) - 1}")
        pids = sorted(set(partitions))
    stats.partitions = pids
    if start is not None and start.kind == "stored" and not group:
        raise InputError("--from stored needs --group: without a group nothing is stored")
    if start is None or start.kind == "stored":
        start = None if group else Start("beginning")
    conf = session.conf(**{"group.id": group or f"kops-consume-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": bool(group), "enable.auto.offset.store": False,
                           "auto.offset.reset": "earliest", "enable.partition.eof": True})
    cons = _built(Consumer, conf)
    eof: set[int] = set()
    # the idle clock runs once partitions are assigned (a group's join takes a moment)
    assigned_at: list[float] = []
    t0 = time.monotonic()
    try:
        if group and not partitions:
            def on_assign(c, assigned):
                if start is not None:
                    pos = _positions(session, topic, [tp.partition for tp in assigned], start)
                    for tp in assigned:
                        tp.offset = pos[tp.partition]
                c.assign(assigned)
                assigned_at.append(time.monotonic())
            cons.subscribe([topic], on_assign=on_assign)
        else:
            pos = _positions(session, topic, pids, start) if start is not None else {}
            # a group's own partitions without --from: its committed offsets (new group: the beginning)
            cons.assign([TopicPartition(topic, p, pos[p] if start is not None else OFFSET_STORED) for p in pids])
            assigned_at.append(time.monotonic())
        last = None
        while True:
            if count is not None and stats.received >= count:
                stats.reason = "count"
                return
            msg = cons.poll(0.2)
            session.check(poll=False)      # the consumer's poll serves error_cb
            if msg is None:
                if not assigned_at:
                    if idle is not None and time.monotonic() - t0 > idle + session.timeout:
                        raise WaitTimeout(f"consume {topic}: group {group} was given no partitions within "
                                          f"{idle + session.timeout:.0f} s" + session.why(),
                                          hint=f"kops group describe {group}: other members may hold them all")
                    continue
                if idle is not None and time.monotonic() - (last or assigned_at[-1]) >= idle:
                    stats.reason = "idle"
                    return
                continue
            err = msg.error()
            if err is not None:
                if err.name() == "_PARTITION_EOF":
                    eof.add(msg.partition())
                    if until_end and eof >= set(pids):
                        stats.reason = "end"
                        return
                    continue
                if err.name() in AUTH_CODES:
                    raise auth_failure(session.bootstrap, session.settings, err.str())
                if err.name() in DENIED_CODES:
                    raise session.denied(f"consume {topic}" + (f" as group {group}" if group else ""), err.name(),
                                         err.str())
                if err.fatal() or err.name() in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"):
                    raise KopsError(f"consume {topic}: {err.str()}")
                continue
            eof.discard(msg.partition())
            last = time.monotonic()
            ts_type, ts = msg.timestamp()
            rec = Record(msg.topic(), msg.partition(), msg.offset(), ts if ts_type else None, msg.key(),
                         msg.value(), tuple((k, v) for k, v in (msg.headers() or [])))
            stats.received += 1
            if group:
                cons.store_offsets(msg)
            yield rec
    except KeyboardInterrupt:
        stats.reason = "interrupted"
        raise
    except KafkaException as exc:
        if _code(exc) in AUTH_CODES:
            raise auth_failure(session.bootstrap, session.settings, _err(exc)) from None
        if _code(exc) in DENIED_CODES:
            raise session.denied(f"consume {topic}", _code(exc), _err(exc)) from None
        raise KopsError(f"consume {topic}: {_err(exc)}") from None
    finally:
        try:
            cons.close()
        except (KafkaException, RuntimeError):
            pass
