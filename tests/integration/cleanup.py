"""What the integration tests share: removing a test cluster's leftovers by label, and
polling for a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time

LABEL = "io.kops.cluster"


def remove_labelled(client, name: str) -> None:
    """Every container, volume and network labelled with cluster ``name`` (a crashed run's
    leftovers too); nothing else."""
    flt = {"label": f"{LABEL}={name}"}
    for c in client.containers.list(all=True, filters=flt, ignore_removed=True):
        c.remove(force=True, v=True)
    for v in client.volumes.list(filters=flt):
        v.remove(force=True)
    for n in client.networks.list(filters=flt):
        n.remove()


def poll(what: str, fn, timeout: float = 120, every: float = 1.0, errors: tuple = (Exception,)):
    """``fn()`` until it returns something true (returned), or fail after ``timeout`` seconds
    naming ``what`` and the last result or error."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except errors as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def free_base(offsets, lo: int = 20000, hi: int = 32000, step: int = 10) -> int:
    """A port base ``b`` where every ``b + o`` for ``o`` in ``offsets`` can be bound now, on
    0.0.0.0 (below the kernel's ephemeral range, so no client socket takes it meanwhile). A
    fixed port can be held by anything, e.g. by a proxy a killed engine left behind."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(lo, hi, step)
        socks = []
        try:
            for o in offsets:
                s = socket.socket()
                socks.append(s)
                s.bind(("0.0.0.0", base + o))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no free port base in {lo}-{hi} for offsets {sorted(offsets)}")
