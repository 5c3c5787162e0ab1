"""`kops status --watch`: the status looked at again every few seconds, and what changed.

On a terminal the table is redrawn in place (rich's Live) under a list of the changes seen,
each with its time; without one (CI logs, a pipe) one line is printed per change, never a
redraw. With ``--until healthy|degraded`` it ends (exit 0) as soon as the cluster is so, or
at ``--timeout`` with the last status's own exit code. Built on get_status: any driver.
"""

from __future__ import annotations

import sys
import time

UNTIL = ("healthy", "degraded")
KEEP = 12   # the changes the live view keeps on screen


def _kafka(st) -> dict:
    k = st.kafka or {}
    return {"registered": len(k.get("brokers") or {}), "expected": k.get("brokers_expected"),
            "controller": k.get("controller"), "under-replicated": len(k.get("under_replicated") or []),
            "offline": len(k.get("offline") or [])}


def _node_words(n) -> str:
    return n.state + (f", {n.health}" if n.health else "")


def summary(st) -> str:
    """One line for the first look: the state and the figures the changes are about."""
    if st.state == "not-found":
        return f"cluster {st.name} not found"
    k = _kafka(st)
    ctl = k["controller"] if k["controller"] is not None else "-"
    return (f"cluster {st.name} {st.state}: brokers registered {k['registered']}/{k['expected']}, controller {ctl}, "
            f"under-replicated {k['under-replicated']}, offline {k['offline']}")


def changes(prev, cur) -> list[str]:
    """What differs from the last look to this one, as short lines: the cluster's state,
    each node's state and health, the controller, the brokers registered, the under-
    replicated and offline partitions. ``prev`` None (the first look): its summary."""
    if prev is None:
        return [summary(cur)]
    out = []
    if prev.state != cur.state:
        out.append(f"cluster {prev.state} -> {cur.state}"
                   + (f" ({'; '.join(cur.problems[:2])})" if cur.problems and cur.state != "healthy" else ""))
    before = {n.name: n for n in prev.nodes}
    now = {n.name: n for n in cur.nodes}
    for name, n in now.items():
        p = before.get(name)
        if p is None:
            out.append(f"{name}: appeared ({_node_words(n)})")
        elif (p.state, p.health) != (n.state, n.health):
            out.append(f"{name}: {_node_words(p)} -> {_node_words(n)}")
    for name in before.keys() - now.keys():
        out.append(f"{name}: gone")
    a, b = _kafka(prev), _kafka(cur)
    if a["controller"] != b["controller"]:
        out.append(f"controller {_id(a['controller'])} -> {_id(b['controller'])}")
    for key, what in (("registered", "brokers registered"), ("under-replicated", "under-replicated partitions"),
                      ("offline", "offline partitions")):
        if a[key] != b[key]:
            trend = "rising" if b[key] > a[key] else "falling"
            if key == "registered":
                trend = "up" if b[key] > a[key] else "down"
            out.append(f"{what} {a[key]} -> {b[key]} ({trend})")
    return out


def _id(value) -> str:
    return "none" if value is None else str(value)


def met(st, until: str | None) -> bool:
    return until is not None and st.state == until


def stamp(elapsed: float, now: float | None = None) -> str:
    """``18:02:11 +12.5s``: the time of day, and the seconds since the watch began."""
    now = time.time() if now is None else now
    return f"{time.strftime('%H:%M:%S', time.localtime(now))} +{elapsed:.1f}s"


def watch(look, *, until: str | None, interval: float, timeout: float | None, live: bool, console,
          render, line=print, clock=time.monotonic, sleep=time.sleep) -> int:
    """Look (``look()`` -> a ClusterStatus) every ``interval`` s; the exit code to end with.

    ``live``: redraw ``render(st, history, footer)`` in place on ``console``; else ``line``
    each change as it is seen. Ends when ``until`` holds (0), at ``timeout`` (the last
    status's exit code), or on Ctrl-C (the last status's exit code)."""
    t0 = clock()
    deadline = None if timeout is None else t0 + timeout
    history: list[str] = []
    prev = None
    view = None
    if live:
        from rich.live import Live

        view = Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False)
        view.start()
    try:
        while True:
            st = look()
            seen = changes(prev, st)
            prev = st
            for c in seen:
                entry = f"{stamp(clock() - t0)}  {c}"
                history.append(entry)
                if not live:
                    line(entry)
            done = met(st, until)
            left = None if deadline is None else deadline - clock()
            if view is not None:
                footer = (f"every {interval:g} s"
                          + (f" · until {until}" if until else "")
                          + (f" · {max(0, left):.0f} s left" if left is not None else "")
                          + (" · done" if done else " · Ctrl-C ends"))
                view.update(render(st, history[-KEEP:], footer), refresh=True)
            if done:
                if not live:
                    line(f"{stamp(clock() - t0)}  cluster {st.name} is {until}: done")
                return 0
            if left is not None and left <= 0:
                if not live:
                    line(f"{stamp(clock() - t0)}  timeout: cluster {st.name} still {st.state}"
                         + (f", not {until}" if until else ""))
                return st.exit_code
            sleep(interval if left is None else max(0.0, min(interval, left)))
    except KeyboardInterrupt:
        return prev.exit_code if prev is not None else 130
    finally:
        if view is not None:
            view.stop()


def is_tty() -> bool:
    return sys.stdout.isatty()
