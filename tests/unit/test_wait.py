"""kops.wait: the one poll loop (on an injected clock: nothing sleeps) and the gates' table."""

from __future__ import annotations

import pytest

from kops.orchestration import gates
from kops.core import wait as waiting  # noqa: F401 - gates registers the Kafka gates
from kops.core.errors import KopsError, NotYet, WaitTimeout


class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, s):
        self.t += s


def script(*answers):
    """A probe answering in turn (the last repeats): a value, or an exception to raise."""
    left = list(answers)

    def probe():
        a = left.pop(0) if len(left) > 1 else left[0]
        if isinstance(a, Exception):
            raise a
        return a
    return probe


def test_returns_once_the_condition_holds():
    c = Clock()
    assert waiting.until(waiting.Strategy(script(NotYet("a"), NotYet("b"), 42), "x", interval=1), 100,
                         clock=c) == 42
    assert c.t == 2   # two rounds of one second


def test_times_out_with_the_last_reason_details_and_hint():
    c = Clock()
    s = waiting.Strategy(script(NotYet("still 3 left")), "the thing", interval=1, details=lambda: "logs",
                         hint="raise --timeout")
    with pytest.raises(WaitTimeout) as exc:
        waiting.until(s, 10, clock=c)
    assert exc.value.message == "timed out after 10 s waiting for the thing: still 3 left"
    assert exc.value.details == "logs" and exc.value.hint == "raise --timeout" and exc.value.exit_code == 4


def test_progress_lines_come_every_few_seconds():
    c, said = Clock(), []
    with pytest.raises(WaitTimeout):
        waiting.until(waiting.Strategy(script(NotYet("why")), "x", interval=1), 21, clock=c, log=said.append)
    assert said == [f"waiting {s} s for x: why" for s in (5, 10, 15, 20)]


def test_settle_restarts_on_a_relapse():
    c = Clock()
    s = waiting.Strategy(script(1, 1, NotYet("relapse"), 1, 1, 1, 1), "x", interval=1, settle=3)
    assert waiting.until(s, 100, clock=c) == 1
    assert c.t == 6   # held from t=3 to t=6


def test_a_kops_error_is_final_without_patience():
    with pytest.raises(KopsError, match="tool failed"):
        waiting.until(waiting.Strategy(script(KopsError("tool failed"), 1), "x"), 100, clock=Clock())


def test_with_patience_a_transient_failure_is_retried_and_a_lasting_one_is_final():
    c = Clock()
    s = waiting.Strategy(script(KopsError("blip"), KopsError("blip"), 7), "x", interval=1, patience=60)
    assert waiting.until(s, 100, clock=c) == 7
    c = Clock()
    s = waiting.Strategy(script(KopsError("down for good")), "x", interval=1, patience=5)
    with pytest.raises(KopsError, match="down for good") as exc:
        waiting.until(s, 100, clock=c)
    assert not isinstance(exc.value, WaitTimeout) and 5 < c.t <= 7


def test_the_watch_fails_fast():
    def watch():
        raise KopsError("zoo2 stopped")
    with pytest.raises(KopsError, match="zoo2 stopped"):
        waiting.until(waiting.Strategy(script(NotYet("x")), "x", watch=watch), 100, clock=Clock())


def test_every_gate_a_plan_names_is_registered_with_its_words():
    from kops.services import connect, registry
    from kops.kafka import zookeeper  # noqa: F401 - they register theirs
    assert set(waiting.GATES) >= {"zookeeper-quorum", "zookeeper-sessions", "kafka-ready", "safe-to-stop",
                                  "healthy", "connect-ready", "registry-ready", "zk-migration"}
    assert waiting.words("kafka-ready").startswith("Kafka to be ready")
    with pytest.raises(KopsError, match="no gate named 'nope'"):
        waiting.factory("nope")
