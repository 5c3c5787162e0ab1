"""What every command shares: the stderr console, errors -> exit codes, JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys

import click
from rich.console import Console
from rich.markup import escape

from kops.core.errors import KopsError
from kops.core.redact import redact as _redact

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
# Tables keep their columns whole when stdout is a file or a pipe (CI logs, `| grep`).
out_console = Console(highlight=False, soft_wrap=True,
                      width=None if sys.stdout.isatty() else 200)


def redact(text: str) -> str:
    """Passwords never reach the terminal, whatever printed them (a tool's own error lines)."""
    return _redact(text)


class Seconds(click.ParamType):
    """A duration in seconds: a finite number from ``low`` to ``high`` (nan and inf are
    refused, as click's FloatRange lets them through)."""

    name = "seconds"

    def __init__(self, low: float = 1, high: float = 86400):
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        import math

        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(v) or not self.low <= v <= self.high:
            self.fail(f"{value!r} is not a number of seconds from {self.low:g} to {self.high:g}", param, ctx)
        return v


def progress(msg: str) -> None:
    err_console.print(f"[dim]·[/dim] {escape(redact(msg))}", markup=True, emoji=False)


def fail(exc: KopsError) -> None:
    err_console.print(f"[bold red]Error:[/bold red] {escape(redact(exc.message))}", markup=True, emoji=False)
    if exc.details:
        err_console.print(redact(exc.details), markup=False, emoji=False)
    if exc.hint:
        err_console.print(f"[bold]Hint:[/bold] {escape(redact(exc.hint))}", markup=True, emoji=False)
    sys.exit(exc.exit_code)


def handle_errors(fn):
    """Turn a KopsError into ``Error:``/``Hint:`` lines and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KopsError as exc:
            fail(exc)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)
        except (SystemExit, click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: say so plainly, traceback on request
            if os.environ.get("KOPS_DEBUG"):
                raise
            fail(KopsError(f"unexpected {exc.__class__.__name__}: {exc}",
                           hint="this is a kops bug: rerun with KOPS_DEBUG=1 for the traceback and "
                                "report it"))

    return wrapper


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
