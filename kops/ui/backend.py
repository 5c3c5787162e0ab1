"""What `kops ui` shows and changes, through the same library calls as the CLI: the status
builder (lifecycle.get_status), kops's own client of a cluster (lifecycle.client_of, with
its TLS/SASL settings read server-side), and kops.kafka's topics, groups and messages.

The pages never see a client setting: every method returns plain data (dicts, lists) that
holds no credential. A cluster is reached through a *target* (what the CLI's Target is: a
``spec``, a ``name``, a ``scope`` and a ``provider()`` context manager), made by whoever
starts the console (kops.cli.ui), so that this package picks clusters exactly as the CLI
does without importing it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Callable, Iterable

from kops.core.errors import InputError, KopsError, NotFoundError
from kops.core.redact import redact

MAX_MESSAGES = 500          # the Messages view's "last N", at most
SESSION_TTL = 120.0         # seconds a cluster's client session is kept (its admin client with it)
NAMES_TTL = 5.0             # seconds the list of clusters on the engine is kept
LEADER_WAIT = 10.0          # seconds a new topic's partitions may take to have a leader known


def _no_leader_yet(exc: KopsError) -> bool:
    text = exc.message.lower()
    return "not leader" in text or "leader not available" in text or "leader_not_available" in text


def words(exc: BaseException) -> str:
    """An error, in words fit for a page: kops's message and hint, secrets masked."""
    if isinstance(exc, KopsError):
        text = exc.message + (f" ({exc.hint})" if exc.hint else "")
    else:
        text = f"{exc.__class__.__name__}: {exc}"
    return redact(text)


class KopsBackend:
    """The real data source. ``names()``: the clusters the console may show (those on the
    engine, plus the inventory's); ``focus``: those the overview opens on; ``target(name)``:
    the CLI's Target of a cluster."""

    def __init__(self, names: Callable[[], Iterable[str]], target: Callable[[str], object], focus: list[str],
                 request_timeout: float = 15.0):
        self._names_fn, self._target_fn = names, target
        self.focus_names = list(focus)
        self.timeout = request_timeout
        self._lock = threading.Lock()
        self._names: tuple[float, list[str]] = (0.0, [])
        self._sessions: dict[str, tuple[float, object]] = {}
        self._targets: dict[str, object] = {}

    # -- which clusters -------------------------------------------------------------------------------------

    def clusters(self) -> list[str]:
        with self._lock:
            at, names = self._names
            if time.monotonic() - at < NAMES_TTL:
                return names
        try:
            found = set(self._names_fn())
        except KopsError:
            found = set()
        names = sorted(found | set(self.focus_names))
        with self._lock:
            self._names = (time.monotonic(), names)
        return names

    def focus(self) -> list[str]:
        return list(self.focus_names) or self.clusters()

    def _target(self, cluster: str):
        if cluster not in self.clusters():
            raise NotFoundError(f"cluster {cluster} is not one this console shows", hint="kops ls")
        with self._lock:
            t = self._targets.get(cluster)
        if t is None:
            t = self._target_fn(cluster)
            with self._lock:
                self._targets[cluster] = t
        return t

    # -- status ---------------------------------------------------------------------------------------------

    def status(self, cluster: str) -> dict:
        from kops.orchestration import lifecycle

        t = self._target(cluster)
        with t.provider() as prov:
            st = lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope)
        return st.as_dict()

    # -- the client session (kops's admin credentials stay here) --------------------------------------------

    def _session(self, cluster: str):
        from kops.kafka import data
        from kops.orchestration import lifecycle

        with self._lock:
            kept = self._sessions.get(cluster)
            if kept and time.monotonic() - kept[0] < SESSION_TTL:
                return kept[1]
        t = self._target(cluster)
        with t.provider() as prov:
            client = lifecycle.client_of(t.spec, prov, name=t.name, scope=t.scope)
        s = data.Session(client.bootstrap, dict(client.settings), self.timeout)
        with self._lock:
            self._sessions[cluster] = (time.monotonic(), s)
        return s

    def _call(self, cluster: str, fn, *args, **kwargs):
        s = self._session(cluster)
        try:
            return fn(s, *args, **kwargs)
        except (InputError, NotFoundError):
            raise
        except KopsError:
            with self._lock:   # a broken connection: a new session next time
                self._sessions.pop(cluster, None)
            raise

    # -- topics ---------------------------------------------------------------------------------------------

    def topics(self, cluster: str, internal: bool = False) -> list[dict]:
        from kops.kafka import data

        return self._call(cluster, data.list_topics, internal=internal)

    def topic(self, cluster: str, topic: str) -> dict:
        """describe_topic; a topic just made (the page after "Create") may have no leader
        known yet for a moment ("not leader for partition"): asked again for a few seconds."""
        from kops.kafka import data

        end = time.monotonic() + LEADER_WAIT
        while True:
            try:
                return self._call(cluster, data.describe_topic, topic)
            except (InputError, NotFoundError):
                raise
            except KopsError as exc:
                if not _no_leader_yet(exc) or time.monotonic() >= end:
                    raise
                time.sleep(0.5)

    def create_topic(self, cluster: str, topic: str, partitions: int, replication_factor: int | None,
                     configs: dict[str, str]) -> bool:
        from kops.kafka import data

        return self._call(cluster, data.create_topic, topic, partitions, replication_factor, configs)

    def delete_topic(self, cluster: str, topic: str) -> None:
        from kops.kafka import data

        self._call(cluster, data.delete_topic, topic)

    # -- consumer groups ------------------------------------------------------------------------------------

    def groups(self, cluster: str) -> list[dict]:
        from kops.kafka import data

        return self._call(cluster, data.list_groups)

    def group(self, cluster: str, group: str) -> dict:
        from kops.kafka import data

        return self._call(cluster, data.describe_group, group)

    def reset_offsets(self, cluster: str, group: str, to: str, value: int | None, topics: list[str],
                      execute: bool) -> dict:
        from kops.kafka import data

        return self._call(cluster, data.reset_offsets, group, to, value=value, topics=topics, execute=execute)

    # -- Kafka Connect (read-only) -------------------------------------------------------------------------

    def connectors(self, cluster: str) -> dict[str, dict]:
        """name -> state, type, tasks, worker (the workers' REST API, as `kops connect list`).
        NotFoundError when the cluster has no running worker."""
        from kops.orchestration import lifecycle
        from kops.services import connect

        t = self._target(cluster)
        with t.provider() as prov:
            addresses = lifecycle.worker_addresses(t.spec, prov, t.name)
        return connect.list_all(addresses)

    # -- messages -------------------------------------------------------------------------------------------

    def messages(self, cluster: str, topic: str, n: int) -> list[dict]:
        """The last ``n`` messages of ``topic`` (the last n of each partition, newest last
        by timestamp), as dicts of bytes: key, value, headers [(name, bytes|None)]."""
        from kops.kafka import messages

        def last(s):
            recs = list(messages.consume(s, topic, start=messages.Start("relative", n), until_end=True,
                                         idle=min(self.timeout, 10.0)))
            recs.sort(key=lambda r: (r.timestamp or 0, r.partition, r.offset))
            return [{"partition": r.partition, "offset": r.offset, "timestamp": r.timestamp, "key": r.key,
                     "value": r.value, "headers": list(r.headers)} for r in recs[-n:]]

        return self._call(cluster, last)

    def produce(self, cluster: str, topic: str, key: str | None, value: str,
                headers: list[tuple[str, str]]) -> dict:
        """One message; returns its partition and offset."""
        from kops.kafka import messages

        got: list = []

        def send(s):
            sep = f"\x00{uuid.uuid4().hex}\x00"   # never in a key typed in a form: the key ends there
            line = f"{key}{sep}{value}" if key else value
            res = messages.produce(s, topic, [line], key_separator=sep if key else None, headers=headers,
                                   on_delivery=got.append)
            if res.errors:
                raise KopsError(f"produce to {topic}: {res.errors[0]}")
            return res

        self._call(cluster, send)
        d = got[0] if got else None
        return {"partition": d.partition if d else None, "offset": d.offset if d else None}
