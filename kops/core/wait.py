"""Waiting on a condition: one poll loop for every wait of kops, and the table of gates.

A :class:`Strategy` is what testcontainers calls a wait strategy: a probe that returns a
result when its condition holds and raises :class:`NotYet` (with the reason) while it does
not, how often to ask, how long it must hold (``settle``), a check that fails fast (a node
that stopped), and the words for progress and time-outs. :func:`until` runs one with a
deadline and an injectable clock (unit tests run it without sleeping).

Gates are registered by the modules that know them (:func:`gate`): the Kafka and
ZooKeeper gates by kops.gates, ``connect-ready`` by kops.connect, ``registry-ready`` by
kops.registry, ``zk-migration`` by kops.zookeeper; the executor looks them up by the name a
plan's ``Wait`` carries (:func:`factory`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from kops.core.errors import KopsError, NotYet, WaitTimeout

POLL = 0.5
NOTE_EVERY = 5.0   # a progress line this often while a wait goes on


@dataclass
class Strategy:
    probe: Callable[[], Any]                 # the result, or NotYet(reason)
    what: str                                # what is awaited, in words ("Kafka to be ready")
    interval: float | None = None            # seconds between rounds (None: POLL)
    settle: float = 0.0                      # seconds the condition must hold
    watch: Callable[[], None] | None = None  # each round: raise to fail fast (a node stopped)
    details: Callable[[], str] | None = None  # on a time-out: the nodes' last log lines
    hint: str | None = None                  # on a time-out
    patience: float | None = None            # the same failure (a KopsError of the probe) for this long is final


@dataclass
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def until(s: Strategy, deadline: float, *, log: Callable[[str], None] | None = None,
          clock: Clock | None = None) -> Any:
    """Poll ``s`` until it holds (for ``settle`` seconds) and return its result; WaitTimeout
    (exit 4) at ``deadline`` with the last reason. A KopsError of the probe is transient
    for ``patience`` seconds when set (then retried), else it is raised at once."""
    c = clock or Clock()
    t0 = c.now()
    last: str | None = None
    first_ok: float | None = None
    failing_since: float | None = None
    last_note = t0
    while True:
        if s.watch is not None:
            s.watch()
        try:
            result = s.probe()
            failing_since = None
            now = c.now()
            first_ok = first_ok if first_ok is not None else now
            if now - first_ok >= s.settle:
                return result
            last = f"steady for {now - first_ok:.0f} of {s.settle:.0f} s"
        except NotYet as exc:
            last, first_ok = str(exc), None
        except KopsError as exc:
            if s.patience is None:
                raise
            now = c.now()
            failing_since = failing_since if failing_since is not None else now
            if now - failing_since > s.patience:
                raise
            last, first_ok = exc.message, None
        if c.now() >= deadline:
            raise WaitTimeout(f"timed out after {c.now() - t0:.0f} s waiting for {s.what}"
                              + (f": {last}" if last else ""),
                              details=s.details() if s.details else None, hint=s.hint)
        if log is not None and c.now() - last_note >= NOTE_EVERY and last and first_ok is None:
            log(f"waiting {c.now() - t0:.0f} s for {s.what}: {last}")
            last_note = c.now()
        step = s.interval if s.interval is not None else POLL
        c.sleep(min(step, max(0.0, deadline - c.now())) or step)


# -- the gates' table -------------------------------------------------------------------------------

# name -> (words for plans and progress, factory(ctx, wait action) -> (probe, describe_ok or None))
GATES: dict[str, tuple[str, Callable]] = {}


def gate(name: str, words: str):
    """Register a gate's probe factory under ``name`` (a decorator)."""
    def register(factory: Callable) -> Callable:
        GATES[name] = (words, factory)
        return factory
    return register


def factory(name: str) -> Callable:
    if name not in GATES:
        raise KopsError(f"no gate named {name!r} is known (known: {', '.join(sorted(GATES))})",
                        hint="this is a kops bug: the module that defines the gate was not loaded")
    return GATES[name][1]


def words(name: str) -> str:
    return GATES[name][0] if name in GATES else name
