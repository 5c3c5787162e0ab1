"""What the integration tests share: removing a test cluster's leftovers by label, and free
host ports. (Running kops and polling for a condition: tests/kopsrun.py.)"""

from __future__ import annotations

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
