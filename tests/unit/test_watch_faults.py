"""Issue 24, the operator's toolbox, without a cluster: `kops status --watch` (its options,
what it calls a change, when it ends) and `kops fault` (its options, the network scripts,
the notes kept in kops's state, how status shows a fault)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kops.cli import watch
from kops.cli.main import cli
from kops.ops import faults
from kops.orchestration.status import ClusterStatus, NodeStatus, mark_faults
from kops.store import state


def run(*args):
    return CliRunner().invoke(cli, list(args))


# -- options: refused before anything is looked at (exit 2, the option named) --------------------

@pytest.mark.parametrize("option,value", [("--interval", "nan"), ("--interval", "0"), ("--interval", "-1"),
                                          ("--interval", "inf"), ("--interval", "0.1"), ("--interval", "x"),
                                          ("--timeout", "nan"), ("--timeout", "-5"), ("--timeout", "inf"),
                                          ("--timeout", "0"), ("--timeout", "soon"), ("--until", "green")])
def test_hostile_watch_values_are_refused_naming_the_option(option, value):
    r = run("status", "--name", "nothere", "--watch", option, value)
    assert r.exit_code == 2, r.output
    assert option in r.output


@pytest.mark.parametrize("args,named", [(["--until", "healthy"], "--until"), (["--timeout", "30"], "--timeout"),
                                        (["--interval", "5"], "--interval")])
def test_watch_options_need_watch(args, named):
    r = run("status", "--name", "nothere", *args)
    assert r.exit_code == 2 and named in r.output and "--watch" in r.output, r.output


@pytest.mark.parametrize("args", [["--output", "json"], ["--wait", "10"]])
def test_watch_refuses_what_does_not_go_with_it(args):
    r = run("status", "--name", "nothere", "--watch", *args)
    assert r.exit_code == 2, r.output


@pytest.mark.parametrize("args,named", [
    (["pause", "kafka1", "--for", "nan"], "--for"), (["pause", "kafka1", "--for", "-1"], "--for"),
    (["kill", "kafka1", "--for", "inf"], "--for"), (["partition", "kafka1", "--for", "0"], "--for"),
    (["lose", "kafka1", "--for", "2 days"], "--for"),
    (["slow", "kafka1", "--delay", "fast"], "--delay"), (["slow", "kafka1", "--delay", "0ms"], "--delay"),
    (["slow", "kafka1", "--delay", "nan"], "--delay"), (["slow", "kafka1", "--delay", "2h"], "--delay"),
    (["lose", "kafka1", "--loss", "0"], "--loss"), (["lose", "kafka1", "--loss", "150%"], "--loss"),
    (["lose", "kafka1", "--loss", "-5%"], "--loss"), (["lose", "kafka1", "--loss", "nan"], "--loss"),
    (["slow", "kafka1", "--delay", "200ms", "--loss", "lots"], "--loss"),
])
def test_hostile_fault_values_are_refused_naming_the_option(args, named):
    r = run("fault", *args, "--name", "nothere")
    assert r.exit_code == 2, r.output
    assert named in r.output, r.output


def test_fault_values():
    assert faults.parse_delay("200ms") == 200 and faults.parse_delay("0.5s") == 500 and faults.parse_delay("20") == 20
    assert faults.parse_loss("5%") == 5 and faults.parse_loss("0.5") == 0.5 and faults.parse_loss("100%") == 100
    from kops.cli.toolbox_faults import Duration

    d = Duration()
    assert d.convert("20s", None, None) == 20 and d.convert("2m", None, None) == 120
    assert d.convert("15", None, None) == 15


# -- the change detection of --watch ----------------------------------------------------------------

def status(state_="healthy", nodes=None, urp=0, controller=1, registered=3, problems=()):
    nodes = nodes or {"zoo1": ("running", "standalone"), "kafka1": ("running", "registered"),
                      "kafka2": ("running", "registered"), "kafka3": ("running", "registered")}
    ns = [NodeStatus(n, "zookeeper" if n.startswith("zoo") else "broker", i, s, {}, h, True)
          for i, (n, (s, h)) in enumerate(nodes.items(), 1)]
    kafka = {"brokers": {i: "x" for i in range(1, registered + 1)}, "brokers_expected": 3, "controller": controller,
             "under_replicated": [f"t-{i}" for i in range(urp)], "offline": []}
    return ClusterStatus("c1", "docker", "zookeeper", "3.9.2", ns, kafka, state_, list(problems))


def test_first_look_is_a_summary():
    (line,) = watch.changes(None, status())
    assert line == "cluster c1 healthy: brokers registered 3/3, controller 1, under-replicated 0, offline 0"


def test_nothing_changed_nothing_said():
    assert watch.changes(status(), status()) == []


def test_a_node_going_down_and_partitions_rising():
    down = status("degraded", nodes={"zoo1": ("running", "standalone"), "kafka1": ("running", "registered"),
                                     "kafka2": ("paused", "fault: paused since 18:00:00"),
                                     "kafka3": ("running", "registered")},
                  urp=4, controller=3, registered=2, problems=["kafka2: paused"])
    got = watch.changes(status(), down)
    assert got == ["cluster healthy -> degraded (kafka2: paused)",
                   "kafka2: running, registered -> paused, fault: paused since 18:00:00",
                   "controller 1 -> 3",
                   "brokers registered 3 -> 2 (down)",
                   "under-replicated partitions 0 -> 4 (rising)"]
    back = watch.changes(down, status(controller=3))
    assert "cluster degraded -> healthy" in back and "under-replicated partitions 4 -> 0 (falling)" in back
    assert "kafka2: paused, fault: paused since 18:00:00 -> running, registered" in back


def test_nodes_appearing_and_going():
    fewer = status(nodes={"zoo1": ("running", "standalone"), "kafka1": ("running", "registered")})
    assert set(watch.changes(status(), fewer)) >= {"kafka2: gone", "kafka3: gone"}
    assert "kafka3: appeared (running, registered)" in watch.changes(fewer, status())


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        assert s >= 0
        self.t += s + 1.0   # each look takes a second


def looks(*sts):
    it = iter(sts)
    last = []

    def look():
        try:
            last[:] = [next(it)]
        except StopIteration:
            pass
        return last[0]
    return look


def test_until_healthy_prints_each_change_once_then_ends_0():
    clock, lines = Clock(), []
    deg = status("degraded", urp=2, problems=["kafka: 2 under-replicated partition(s)"])
    code = watch.watch(looks(deg, deg, status("degraded", urp=1, problems=["x"]), status()), until="healthy",
                       interval=2, timeout=60, live=False, console=None, render=None, line=lines.append,
                       clock=clock, sleep=clock.sleep)
    assert code == 0
    said = [line.split("  ", 1)[1] for line in lines]
    assert said == ["cluster c1 degraded: brokers registered 3/3, controller 1, under-replicated 2, offline 0",
                    "under-replicated partitions 2 -> 1 (falling)",
                    "cluster degraded -> healthy",
                    "under-replicated partitions 1 -> 0 (falling)",
                    "cluster c1 is healthy: done"]
    assert all(line[2] == ":" and "+" in line.split("  ", 1)[0] for line in lines)   # timestamped


def test_timeout_ends_with_the_status_own_exit_code():
    clock, lines = Clock(), []
    deg = status("degraded", problems=["kafka2: paused"])
    code = watch.watch(looks(deg), until="healthy", interval=2, timeout=10, live=False, console=None, render=None,
                       line=lines.append, clock=clock, sleep=clock.sleep)
    assert code == 1 and "timeout: cluster c1 still degraded, not healthy" in lines[-1]
    assert clock.t <= 10 + 1.0 + 2   # never sleeps past the deadline by more than a look


def test_until_degraded_and_not_found():
    clock = Clock()
    assert watch.watch(looks(status(), status("degraded", problems=["p"])), until="degraded", interval=1,
                       timeout=30, live=False, console=None, render=None, line=lambda s: None, clock=clock,
                       sleep=clock.sleep) == 0
    gone = ClusterStatus("c1", "docker", "?", "?", [], {}, "not-found", ["no nodes"])
    assert watch.watch(looks(gone), until="healthy", interval=1, timeout=3, live=False, console=None, render=None,
                       line=lambda s: None, clock=clock, sleep=clock.sleep) == 3


def test_live_view_redraws_without_printing_lines():
    from io import StringIO

    from rich.console import Console
    from rich.text import Text

    out = StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    clock, lines, drawn = Clock(), [], []

    def render(st, history, footer):
        drawn.append((st.state, list(history), footer))
        return Text("\n".join(history + [footer]))

    code = watch.watch(looks(status("degraded", problems=["p"]), status()), until="healthy", interval=1, timeout=30,
                       live=True, console=console, render=render, line=lines.append, clock=clock, sleep=clock.sleep)
    assert code == 0 and lines == []
    assert [d[0] for d in drawn] == ["degraded", "healthy"]
    assert "cluster degraded -> healthy" in drawn[-1][1][-1] and "done" in drawn[-1][2]


# -- faults: the scripts, the notes, the status -------------------------------------------------------

def test_partition_script_cuts_the_peers_both_ways_and_keeps_loopback():
    s = faults.net_script(cut=["172.18.0.3", "172.18.0.2"])
    assert "ip saddr { 172.18.0.2, 172.18.0.3 } drop" in s and "ip daddr { 172.18.0.2, 172.18.0.3 } drop" in s
    assert "netem" not in s and f"delete table inet {faults.TABLE}" in s
    every = faults.net_script(cut=["172.18.0.3"], clients=True)
    assert 'iifname != "lo" drop' in every and 'oifname != "lo" drop' in every


def test_loss_and_delay_scripts():
    s = faults.net_script(loss_pct=5)
    assert "numgen random mod 10000 < 500 drop" in s and "netem" not in s
    d = faults.net_script(delay_ms=200, loss_pct=0.5)
    assert "netem delay 200ms" in d and "< 50 drop" in d and "no netem" in d
    h = faults.heal_script()
    assert f"nft delete table inet {faults.TABLE}" in h and "tc qdisc del" in h and h.endswith("true")


def test_fault_notes_in_state(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    assert state.faults("c1") == {}
    state.note_fault("c1", "kafka2", {"kind": "pause", "since": 1.0})
    state.note_fault("c1", "kafka3", {"kind": "lose", "since": 2.0, "loss_pct": 5})
    assert set(state.faults("c1")) == {"kafka2", "kafka3"}
    state.forget_fault("c1", ["kafka2"])
    assert set(state.faults("c1")) == {"kafka3"}
    state.forget_fault("c1")
    assert state.faults("c1") == {} and not (tmp_path / "clusters" / "c1" / "faults.json").exists()


def test_status_shows_the_fault_on_its_node_and_is_not_healthy():
    st = status(nodes={"kafka1": ("running", "registered"), "kafka2": ("paused", "stopped")})
    rec = {"kind": "pause", "since": 0.0}
    mark_faults(st, {"kafka2": rec}, faults.describe, " --name c1")
    n2 = next(n for n in st.nodes if n.name == "kafka2")
    assert n2.health.startswith("fault: paused since ") and "stopped" not in n2.health
    assert n2.as_dict()["fault"]["kind"] == "pause" and "fault" not in st.nodes[0].as_dict()
    assert st.state == "degraded" and any("kops fault heal kafka2 --name c1" in p for p in st.problems)


def test_describe():
    assert faults.describe({"kind": "slow", "delay_ms": 200, "loss_pct": 5, "since": 0}).startswith(
        "delay 200 ms + 5% packet loss since ")
    assert "cut off from the other nodes and the clients" in faults.describe({"kind": "partition", "clients": True})
    assert "heals at" in faults.describe({"kind": "pause", "since": 0, "until": 10}, now=5)
    assert "was to heal at" in faults.describe({"kind": "pause", "since": 0, "until": 10}, now=100)


class FakeProvider:
    def __init__(self, code=0):
        self.calls, self.code = [], code

    def pause_node(self, node):
        self.calls.append(("pause", node))

    def resume_node(self, node):
        self.calls.append(("resume", node))
        return True

    def kill_node(self, node):
        self.calls.append(("kill", node))

    def node_peers(self, node):
        return {"kafka1": "10.0.0.1", "zoo1": "10.0.0.9"}

    def net_script(self, node, script):
        self.calls.append(("net", node, script))
        return self.code, "Error: Specified qdisc kind is unknown.\nkops: this kernel has no netem\n"


def test_inject_and_heal(tmp_path, monkeypatch):
    from kops.core.errors import InputError, KopsError

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    st, prov = status(), FakeProvider()
    with pytest.raises(InputError, match="no node 'kafka9'"):
        faults.inject(st, prov, "kafka9", "pause")
    rec = faults.inject(st, prov, "kafka2", "partition", duration=20)
    assert rec["cut_from"] == ["kafka1", "zoo1"] and rec["until"] == rec["since"] + 20
    assert "ip saddr { 10.0.0.1, 10.0.0.9 } drop" in prov.calls[-1][2]
    with pytest.raises(InputError, match="already has a fault"):
        faults.inject(st, prov, "kafka2", "pause")
    faults.inject(st, prov, "kafka3", "pause")
    assert faults.heal("c1", prov) == ["kafka2", "kafka3"]
    assert ("resume", "kafka3") in prov.calls and state.faults("c1") == {}
    bad = FakeProvider(code=4)
    with pytest.raises(KopsError, match="no netem"):
        faults.inject(st, bad, "kafka1", "slow", delay_ms=200)
    assert state.faults("c1") == {} and faults.heal_script() == bad.calls[-1][2]   # nothing left in place
    gone = ClusterStatus("c1", "docker", "?", "?", [], {}, "not-found", [])
    with pytest.raises(KopsError, match="only into clusters it made"):
        faults.inject(gone, prov, "kafka1", "kill")


def test_the_pytest_plugin_fault_heals_when_the_block_ends(tmp_path, monkeypatch):
    from kops.pytest_plugin import KafkaCluster

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    kc = KafkaCluster.__new__(KafkaCluster)
    kc.name, kc.spec, kc._log, kc._provider = "c1", None, lambda m: None, FakeProvider()
    kc._lifecycle = type("L", (), {"get_status": staticmethod(lambda spec, prov: status())})
    with kc.fault("kafka2", "pause", seconds=30):
        assert state.faults("c1")["kafka2"]["kind"] == "pause"
    assert state.faults("c1") == {} and kc._provider.calls == [("pause", "kafka2"), ("resume", "kafka2")]
    with pytest.raises(RuntimeError):
        with kc.fault("kafka3", "lose", loss="5%"):
            raise RuntimeError("the test failed")
    assert state.faults("c1") == {}   # healed all the same
    import time

    with kc.fault("kafka1", "pause", seconds=0.2):
        time.sleep(0.6)
        assert "kafka1" not in state.faults("c1")   # healed after seconds, before the block ended
