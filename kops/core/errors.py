"""One error hierarchy for kops: a message, a hint and an exit code.

The CLI prints ``Error: <message>`` and ``Hint: <hint>`` on stderr and exits with
``exit_code``. Library callers catch :class:`KopsError`.

Exit codes (documented in the README):
  0 ok · 1 runtime failure / degraded · 2 bad input (nothing was changed) ·
  3 not found or stopped · 4 a wait timed out · 5 `up --dry-run --exit-code`: changes pending
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_CHANGES = 5     # `up --dry-run --exit-code`: the cluster differs from its inventory (drift)


class KopsError(Exception):
    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None, *, details: str | None = None,
                 exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class InputError(KopsError):
    """Bad input: inventory, flags, a port clash. Nothing was created."""

    exit_code = EXIT_INPUT


class NotFoundError(KopsError):
    exit_code = EXIT_NOT_FOUND


class EngineError(KopsError):
    """The Docker engine (or an SSH host) is missing or refused."""

    exit_code = EXIT_FAILURE


class DistError(KopsError):
    """A Kafka distribution could not be fetched, verified or assembled."""

    exit_code = EXIT_FAILURE


class WaitTimeout(KopsError):
    exit_code = EXIT_TIMEOUT


class NotYet(Exception):
    """A probe's way of saying why it is not ready yet (the only exception a wait retries)."""


def combined(errors: list[KopsError]) -> KopsError:
    """One error for several concurrent failures (the actions of one step): each one's
    message and details, the highest exit code (a time-out over a failure), the first hint."""
    if len(errors) == 1:
        return errors[0]
    lines = [f"{len(errors)} actions of one step failed:"] + [f"  - {e.message}" for e in errors]
    details = "\n".join(e.details for e in errors if e.details) or None
    return KopsError("\n".join(lines), details=details, exit_code=max(e.exit_code for e in errors),
                     hint=next((e.hint for e in errors if e.hint), None))


def seconds(value, what: str = "timeout", low: float = 0, high: float = 86400) -> float:
    """A duration a library caller passed: a finite number from ``low`` to ``high`` seconds
    (the CLI's own check, kops.cli.common.Seconds, for callers that skip the CLI)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise InputError(f"{what}: {value!r} is not a number of seconds from {low:g} to {high:g}",
                         hint=f"e.g. {what}=300")
    return float(value)


def run_all(jobs: list) -> None:
    """Run the callables ``jobs`` at once (one thread each) and wait for all of them; every
    KopsError among them is raised together (:func:`combined`), any other exception as itself."""
    from concurrent.futures import ThreadPoolExecutor

    if len(jobs) == 1:
        jobs[0]()
        return
    errors: list[KopsError] = []
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        for f in [pool.submit(fn) for fn in jobs]:
            try:
                f.result()
            except KopsError as exc:
                errors.append(exc)
    if errors:
        raise combined(errors)
