"""The executor (kops.execute): the one loop that runs every plan.

* every Action subclass kops has is executable, alone and several in one step: a node
  action is one both providers declare (and Docker has a handler for), a cluster action
  has its own ``execute``; the executor hands the provider its own actions only;
* every failure of a step is reported, not only the first; a failed rollback is said
  next to the original error; a safe-to-stop refusal names the node it spared;
* durations from library callers are checked as the CLI checks them; kops's state files
  fail closed.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math

import pytest

from kops.orchestration import execute, gates
from kops.ops import migrate
from kops import plan as planlib
from kops.plan import quorum, scale  # noqa: F401 - every Action module
from kops.core.errors import InputError, KopsError, WaitTimeout, combined, seconds
from kops.plan import Action, ClusterAction, Plan, Reconfigure, Restart, Wait
from kops.providers.docker import DockerProvider
from kops.providers.ssh import SSHProvider


def every_action() -> list[type]:
    out, todo = [], [Action]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if dataclasses.is_dataclass(sub) and sub is not ClusterAction:
                out.append(sub)
    return sorted(set(out), key=lambda c: c.__name__)


ACTIONS = every_action()


def test_every_action_kind_is_found():
    names = {c.__name__ for c in ACTIONS}
    assert {"Create", "Reconfigure", "Restart", "Stop", "Remove", "RemoveHost", "PrepareHost", "Format",
            "Bootstrap", "Start", "Wait", "StorageTopics", "Reassign", "Unregister", "AddController",
            "RemoveController", "DeleteZnode"} <= names


@pytest.mark.parametrize("cls", [c for c in ACTIONS if c is not Wait], ids=lambda c: c.__name__)
def test_each_action_has_exactly_one_executor(cls):
    if issubclass(cls, ClusterAction):
        assert cls.execute is not ClusterAction.execute, f"{cls.__name__} is a cluster action without execute"
        assert cls not in DockerProvider.info.handles and cls not in SSHProvider.info.handles
        return
    for info in (DockerProvider.info, SSHProvider.info):
        assert cls in info.handles, f"a provider does not declare {cls.__name__}"
    assert callable(getattr(DockerProvider, "_" + cls.__name__.lower(), None))
    assert "isinstance(a, " + cls.__name__ in inspect.getsource(SSHProvider) \
        or f"{cls.__name__})" in inspect.getsource(SSHProvider)


class FakeProvider:
    name = "fake"
    info = DockerProvider.info

    def __init__(self, fail: dict[str, str] | None = None, rollback_fails: bool = False):
        self.applied: list[list[Action]] = []
        self.fail = fail or {}
        self.rollback_fails = rollback_fails
        self.settled: list[str] = []

    def apply(self, step, bundle):
        for a in step:
            assert execute.provider_side(a), f"the provider was handed {a.kind}"
        self.applied.append(list(step))
        errors = [KopsError(self.fail[a.node], details=f"log of {a.node}") for a in step if a.node in self.fail]
        if errors:
            raise combined(errors)

    def rollback(self, nodes, bundle):
        if self.rollback_fails:
            raise KopsError("could not put back the previous container of " + ", ".join(nodes),
                            details="engine said no")
        return list(nodes)

    def settle(self, nodes):
        self.settled += nodes


def instance(cls, i: int = 0):
    kw = {"node": f"n{i}", "host": "docker"} if "node" in {f.name for f in dataclasses.fields(cls)} else {}
    if cls is Wait:
        kw["gate"] = "healthy"
    return cls(**kw)


@pytest.fixture
def ran(monkeypatch):
    """Cluster actions and gates record that they ran (no Kafka here)."""
    calls = []
    for cls in ACTIONS:
        if issubclass(cls, ClusterAction):
            monkeypatch.setattr(cls, "execute", lambda self, ctx, bundle, deadline: calls.append(self))
    monkeypatch.setattr(gates, "wait", lambda ctx, w, deadline: calls.append(w))
    return calls


@pytest.mark.parametrize("cls", ACTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("size", [1, 3])
def test_every_action_runs_alone_and_several_in_a_step(cls, size, ran):
    prov = FakeProvider()
    p = Plan()
    p.add(*[instance(cls, i) for i in range(size)])
    ctx = gates.Context(None, prov, lambda m: None)
    execute.run(p, ctx, None, 10**9)
    if execute.provider_side(p.steps[0][0]):
        assert prov.applied == [p.steps[0]] and ran == []
    else:
        assert prov.applied == [] and ran == p.steps[0]
    assert len(ctx.timeline) == 1


def test_a_mixed_step_splits_between_provider_and_cluster_actions(ran):
    prov = FakeProvider()
    p = Plan()
    stop = planlib.Stop(node="kafka4", host="docker")
    unreg = [scale.Unregister(node="kafka4", broker=4), scale.Unregister(node="kafka5", broker=5)]
    p.add(stop, *unreg)
    execute.run(p, gates.Context(None, prov, lambda m: None), None, 10**9)
    assert prov.applied == [[stop]] and sorted(ran, key=lambda a: a.broker) == unreg


def test_every_failure_of_a_step_is_reported(monkeypatch):
    def boom(self, ctx, bundle, deadline):
        raise KopsError(f"unregistering {self.broker} failed", details=f"tool output {self.broker}")

    monkeypatch.setattr(scale.Unregister, "execute", boom)
    prov = FakeProvider(fail={"kafka4": "kafka4: the engine refused to stop"})
    p = Plan()
    p.add(planlib.Stop(node="kafka4"), scale.Unregister(broker=4), scale.Unregister(broker=5))
    with pytest.raises(KopsError) as exc:
        execute.run(p, gates.Context(None, prov, lambda m: None), None, 10**9)
    msg = exc.value.message
    assert msg.startswith("3 actions of one step failed")
    assert all(w in msg for w in ("kafka4: the engine refused", "unregistering 4", "unregistering 5"))
    assert all(w in exc.value.details for w in ("log of kafka4", "tool output 4", "tool output 5"))


def test_a_time_out_among_failures_keeps_its_exit_code():
    err = combined([KopsError("a"), WaitTimeout("b")])
    assert err.exit_code == 4 and "2 actions" in err.message


class _Bundle:
    """Just enough of a bundle for a rollback: node -> role."""

    def __init__(self, *names):
        node = type("N", (), {"role": "broker"})
        self.nodes = {n: type("NB", (), {"node": node})() for n in names}


def test_a_failed_rollback_is_said_next_to_the_original_error(ran):
    prov = FakeProvider(fail={"kafka1": "kafka1 did not start"}, rollback_fails=True)
    p = Plan()
    p.add(Reconfigure(node="kafka1", host="docker"))
    with pytest.raises(KopsError) as exc:
        execute.run(p, gates.Context(None, prov, lambda m: None), _Bundle("kafka1"), 10**9)
    assert "putting the previous config back failed too" in exc.value.message
    assert "could not put back the previous container of kafka1" in exc.value.message
    assert "kafka1 did not start" in exc.value.details and "engine said no" in exc.value.details


def test_a_rollback_that_works_is_awaited_and_said(ran):
    prov = FakeProvider(fail={"kafka1": "kafka1 did not start"})
    p = Plan()
    p.add(Reconfigure(node="kafka1", host="docker"))
    with pytest.raises(KopsError) as exc:
        execute.run(p, gates.Context(None, prov, lambda m: None), _Bundle("kafka1"), 10**9)
    assert "the previous config was put back" in exc.value.message
    assert [w.gate for w in ran] == ["kafka-ready"]


def test_reconfigured_nodes_are_settled_after_the_next_gate(ran):
    prov = FakeProvider()
    p = Plan()
    p.add(Reconfigure(node="kafka1", host="docker"))
    p.add(Wait(gate="kafka-ready"))
    execute.run(p, gates.Context(None, prov, lambda m: None), _Bundle("kafka1"), 10**9)
    assert prov.settled == ["kafka1"]


def test_safe_to_stop_refusal_names_the_node_and_what_it_spared(monkeypatch):
    def wait(ctx, w, deadline):
        raise WaitTimeout("timed out after 5 s waiting for no partition: orders-0 has 1 in sync")

    monkeypatch.setattr(gates, "wait", wait)
    prov = FakeProvider()
    p = Plan()
    p.add(Wait(gate="safe-to-stop", nodes=("kafka1",)))
    p.add(Restart(node="kafka1", host="docker"))
    with pytest.raises(KopsError) as exc:
        execute.run(p, gates.Context(None, prov, lambda m: None), None, 10**9)
    assert exc.value.message.startswith("not restarting kafka1: ") and prov.applied == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, 0, "300", True, None, 10**9])
def test_library_durations_are_checked_as_the_cli_checks_them(bad):
    with pytest.raises(InputError) as exc:
        seconds(bad, low=1)
    assert exc.value.exit_code == 2 and "timeout" in exc.value.message


def test_up_refuses_a_nan_timeout_before_anything(monkeypatch):
    from kops.model import inventory
    from kops.orchestration import lifecycle

    spec = inventory.load(preset="dev")
    with pytest.raises(InputError, match="not a number of seconds"):
        lifecycle.up(spec, provider=None, timeout=math.nan)


@pytest.mark.parametrize("module, reader, name", [
    ("kops.orchestration.preflight", "recorded", "version.json"),
    ("kops.plan.quorum", "known", "controllers.json"),
    ("kops.plan.quorum", "pending", "pending-voters.json"),
    ("kops.store.migration_record", "checkpoint", "migration.json"),
])
@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\"text\"", "\xff\xfe"])
def test_a_corrupt_state_file_is_an_error_naming_it(tmp_path, monkeypatch, module, reader, name, content):
    import importlib

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    f = tmp_path / "clusters" / "c1" / name
    f.parent.mkdir(parents=True)
    f.write_bytes(content.encode("latin-1"))
    fn = getattr(importlib.import_module(module), reader)
    want_list = name in ("controllers.json", "pending-voters.json")
    if content == "[1, 2]" and want_list:
        assert fn("c1") == [1, 2]
        return
    with pytest.raises(KopsError) as exc:
        fn("c1")
    assert str(f) in exc.value.message and exc.value.hint


def test_a_missing_state_file_is_empty(tmp_path, monkeypatch):
    from kops.ops import upgrade

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    assert upgrade.recorded("nothing") == {} and quorum.known("nothing") == [] \
        and migrate.checkpoint("nothing") == {}
    upgrade.note("c2", version="3.9.2")
    assert json.loads((tmp_path / "clusters" / "c2" / "version.json").read_text()) == {"version": "3.9.2"}
