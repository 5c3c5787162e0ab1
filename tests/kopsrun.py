"""The suite's one way to run the kops CLI and to wait for something, for every tier
(unit, integration, e2e: tests/conftest.py puts tests/ on ``sys.path``).

* ``kops(*args, env=..., timeout=..., cwd=..., input=...)``: the venv's ``kops`` in a
  process of its own, as a user runs it; returns the ``CompletedProcess`` (text, output
  captured, ``.seconds`` it took) and never raises on a non-zero exit. A run still going
  after ``timeout`` fails the test with what it printed so far.
* ``ok(p)``: ``p`` exited 0, or an ``AssertionError`` showing the command and the tails of
  its output; returns ``p``. ``json_of(p)``: its stdout as JSON, or the same kind of error.
* ``poll(fn, timeout=..., what=...)``: ``fn()`` until it returns something true (returned);
  an ``AssertionError`` from ``fn`` is retried, and the last one raised at the deadline with
  ``what`` in its message. Never a fixed sleep, never an assert on the wall clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

KOPS = str(Path(sys.executable).parent / "kops")
TIMEOUT = 600        # seconds a kops command may take unless the caller says otherwise
TAIL = 10_000        # characters of stdout and of stderr shown when a command fails


def kops(*args, env: dict | None = None, timeout: float | None = TIMEOUT, cwd=None, input: str | None = None,
         state_dir=None) -> subprocess.CompletedProcess:
    """``kops ARGS...`` (each argument ``str()``-ed). ``env`` defaults to this process's
    environment (read at the call); ``state_dir``, if given, goes in it as KOPS_STATE_DIR.
    Without ``input``, the command's stdin is empty (/dev/null): it never waits on a terminal."""
    if state_dir is not None:
        env = {**(os.environ if env is None else env), "KOPS_STATE_DIR": str(state_dir)}
    argv = [KOPS, *map(str, args)]
    shown = " ".join(["kops", *argv[1:]])
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, env=env, cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL if input is None else None)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{shown}` still running after {timeout:g} s\n"
                    f"--- stdout\n{_tail(exc.stdout)}\n--- stderr\n{_tail(exc.stderr)}", pytrace=False)
    p.seconds = time.monotonic() - t0
    print(f"$ {shown}  -> exit {p.returncode} in {p.seconds:.1f} s")
    return p


def ok(p: subprocess.CompletedProcess, what: str = "") -> subprocess.CompletedProcess:
    """``p``, which exited 0; else an AssertionError with the command and its output's tails."""
    if p.returncode != 0:
        raise AssertionError(f"{what + ': ' if what else ''}`{_command(p)}` exited {p.returncode}\n"
                             f"--- stdout\n{_tail(p.stdout)}\n--- stderr\n{_tail(p.stderr)}")
    return p


def json_of(p: subprocess.CompletedProcess):
    """``p``'s stdout, parsed as JSON (whatever its exit code)."""
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise AssertionError(f"not JSON on the stdout of `{_command(p)}` (exit {p.returncode}):\n"
                             f"{_tail(p.stdout)}\n--- stderr\n{_tail(p.stderr)}") from None


def poll(fn, *, timeout: float, interval: float = 0.5, what: str | None = None,
         retry_on: tuple[type[BaseException], ...] = (AssertionError,)):
    """``fn()`` until it returns something true, which is returned; at least once, then every
    ``interval`` seconds until ``timeout`` seconds have passed. An exception of ``retry_on``
    (an AssertionError unless told otherwise) counts as "not yet"; the last one is raised at
    the deadline, ``what`` (what was waited for) in its message. Anything else is raised at once."""
    what = what or getattr(fn, "__name__", repr(fn))
    deadline = time.monotonic() + timeout
    while True:
        error = value = None
        try:
            value = fn()
        except retry_on as exc:
            error = exc
        else:
            if value:
                return value
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    if isinstance(error, AssertionError):
        error.args = (f"{what}: not within {timeout:g} s: {error}", *error.args[1:])
        raise error
    if error is not None:
        raise AssertionError(f"{what}: not within {timeout:g} s: {error!r}") from error
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {_short(repr(value))})")


def _command(p: subprocess.CompletedProcess) -> str:
    args = p.args if isinstance(p.args, (list, tuple)) else [p.args]
    return " ".join([Path(str(args[0])).name, *map(str, args[1:])]) if args else "?"


def _tail(text, n: int = TAIL) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text if len(text) <= n else f"[... {len(text) - n} characters before]\n{text[-n:]}"


def _short(text: str, n: int = 500) -> str:
    return text if len(text) <= n else text[:n] + " ..."
