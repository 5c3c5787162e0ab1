"""The suite's own helpers (tests/kopsrun.py): the kops runner, ``ok``/``json_of`` and ``poll``.
No clock is asserted on: ``poll`` is driven by what its function returns or raises."""

from __future__ import annotations

import subprocess

import pytest

from kopsrun import KOPS, json_of, kops, ok, poll


def calls(*results):
    """A function that returns (or raises) ``results`` one after the other, counting its calls."""
    it = iter(results)

    def fn():
        fn.n += 1
        r = next(it)
        if isinstance(r, BaseException):
            raise r
        return r
    fn.n = 0
    return fn


def test_poll_returns_the_first_true_value():
    fn = calls(0, None, "", "there", "later")
    assert poll(fn, timeout=60, interval=0) == "there"
    assert fn.n == 4


def test_poll_retries_an_assertion_until_it_holds():
    fn = calls(AssertionError("not yet"), AssertionError("still not"), {"ok": 1})
    assert poll(fn, timeout=60, interval=0) == {"ok": 1}
    assert fn.n == 3


def test_poll_raises_the_last_assertion_at_the_deadline_with_what():
    last = AssertionError("2 of 3 in sync")
    with pytest.raises(AssertionError) as err:
        poll(calls(last), timeout=0, what="the ISR whole")
    assert err.value is last
    assert str(err.value) == "the ISR whole: not within 0 s: 2 of 3 in sync"


def test_poll_says_what_and_the_last_value_when_it_stays_false():
    with pytest.raises(AssertionError, match=r"^URP 0: not within 0 s \(last: \[\]\)$"):
        poll(calls([]), timeout=0, what="URP 0")


def test_poll_raises_anything_else_at_once():
    fn = calls(KeyError("bug"), "never")
    with pytest.raises(KeyError):
        poll(fn, timeout=60, interval=0)
    assert fn.n == 1


def test_poll_retries_what_it_is_told_to_and_chains_it():
    assert poll(calls(ConnectionError("refused"), 7), timeout=60, interval=0, retry_on=(ConnectionError,)) == 7
    with pytest.raises(AssertionError, match="metrics: not within 0 s: ConnectionError") as err:
        poll(calls(ConnectionError("refused")), timeout=0, what="metrics", retry_on=(ConnectionError,))
    assert isinstance(err.value.__cause__, ConnectionError)
    fn = calls(AssertionError("x"), 1)
    with pytest.raises(AssertionError, match="^x$"):   # not listed: an AssertionError is raised at once
        poll(fn, timeout=60, interval=0, retry_on=(ConnectionError,))
    assert fn.n == 1


def test_ok_and_json_of_show_the_command_and_its_output():
    good = subprocess.CompletedProcess([KOPS, "status", "--output", "json"], 0, '{"state": "healthy"}\n', "")
    assert ok(good) is good
    assert json_of(good) == {"state": "healthy"}
    bad = subprocess.CompletedProcess([KOPS, "up", "-i", "x.yaml"], 2, "out\n", "x" * 20_000 + "the reason\n")
    with pytest.raises(AssertionError) as err:
        ok(bad, "kops up")
    msg = str(err.value)
    assert msg.startswith("kops up: `kops up -i x.yaml` exited 2\n--- stdout\nout\n\n--- stderr\n[... "), msg[:200]
    assert msg.endswith("the reason\n") and len(msg) < 11_000   # the tail of a long output
    with pytest.raises(AssertionError, match="not JSON on the stdout of `kops up -i x.yaml` \\(exit 2\\)"):
        json_of(bad)


def test_kops_runs_the_cli_of_this_venv(tmp_path):
    p = ok(kops("--help", timeout=120, cwd=tmp_path))
    assert "Usage" in p.stdout and p.seconds > 0
    assert p.args[0] == KOPS and p.args[1:] == ["--help"]
