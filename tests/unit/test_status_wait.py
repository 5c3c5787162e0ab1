"""`kops status --wait` / `get_status(wait=...)`: a degraded cluster is looked at again
until it is healthy or the time is up; a stopped or missing one is returned at once."""

from __future__ import annotations

import pytest

from kops.orchestration import lifecycle
from kops.core import wait as waiting
from kops.core.errors import InputError
from kops.orchestration.status import ClusterStatus

REAL_CLOCK = waiting.Clock


def _status(state: str, problems=()) -> ClusterStatus:
    return ClusterStatus("c", "docker", "kraft", "4.4.0", [], {}, state, list(problems))


def _fake(monkeypatch, states: list[str]) -> list[str]:
    looks: list[str] = []
    monkeypatch.setattr(lifecycle, "_observe", lambda spec, prov: (None, None, type("O", (), {"meta": {}})()))

    def probe(*a, **k):
        state = states[min(len(looks), len(states) - 1)]
        looks.append(state)
        return _status(state, ["kraft: the controller quorum has no leader"] if state == "degraded" else [])

    monkeypatch.setattr(lifecycle, "_probe_status", probe)
    monkeypatch.setattr(waiting, "Clock", lambda: REAL_CLOCK(sleep=lambda s: None))
    return looks


def test_a_degraded_cluster_is_looked_at_again_until_healthy(monkeypatch):
    looks = _fake(monkeypatch, ["degraded", "degraded", "healthy"])
    said = []
    st = lifecycle.get_status(None, None, name="c", wait=30, log=said.append)
    assert st.state == "healthy" and looks == ["degraded", "degraded", "healthy"]
    assert len(said) == 1 and "no leader" in said[0] and "30 s" in said[0]


def test_without_wait_one_look(monkeypatch):
    looks = _fake(monkeypatch, ["degraded", "healthy"])
    assert lifecycle.get_status(None, None, name="c").state == "degraded" and looks == ["degraded"]


def test_stopped_is_not_waited_for(monkeypatch):
    looks = _fake(monkeypatch, ["stopped", "healthy"])
    assert lifecycle.get_status(None, None, name="c", wait=30).state == "stopped" and looks == ["stopped"]


def test_still_degraded_when_the_time_is_up(monkeypatch):
    looks = _fake(monkeypatch, ["degraded"])
    ticks = iter(range(0, 1000, 10))   # each look at the clock: 10 s later
    monkeypatch.setattr(waiting, "Clock", lambda: REAL_CLOCK(now=lambda: next(ticks), sleep=lambda s: None))
    st = lifecycle.get_status(None, None, name="c", wait=25)
    assert st.state == "degraded" and st.exit_code == 1 and 2 <= len(looks) <= 4


def test_a_node_of_the_inventory_not_running_is_not_waited_for(monkeypatch):
    looks = _fake(monkeypatch, ["degraded", "healthy"])
    node = type("N", (), {"name": "kafka2"})()
    stopped = type("O", (), {"meta": {}, "get": lambda self, n: type("S", (), {"running": False})()})()
    monkeypatch.setattr(lifecycle, "_observe", lambda spec, prov: (type("T", (), {"nodes": [node]})(), None, stopped))
    assert lifecycle.get_status(None, None, name="c", wait=30).state == "degraded" and looks == ["degraded"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, 86401, "60"])
def test_a_wait_that_is_not_a_bounded_number_is_refused(bad, monkeypatch):
    looks = _fake(monkeypatch, ["degraded"])
    with pytest.raises(InputError) as ei:
        lifecycle.get_status(None, None, name="c", wait=bad)
    assert ei.value.exit_code == 2 and "wait" in ei.value.message and looks == []
