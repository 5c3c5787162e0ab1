"""Safe rolling restarts, the way Strimzi and cp-ansible gate them.

Before a broker goes down, no partition it is in the ISR of may drop below
``min.insync.replicas`` (the restart waits for such partitions to catch up, and names them
if they do not). After it comes back, the next node waits until the cluster is healthy
again: the node registered, every partition's ISR whole, the quorum led. The active
controller goes last.
"""

from __future__ import annotations

import time

from . import health
from .errors import KopsError, WaitTimeout


def order(status, only: list[str] | None = None) -> list:
    """Kafka nodes to restart: brokers, then dedicated controllers, the active controller last."""
    nodes = [n for n in status.nodes if n.role != "zookeeper" and (not only or n.name in only)]
    if only:
        unknown = sorted(set(only) - {n.name for n in nodes})
        if unknown:
            from .errors import InputError

            raise InputError(f"no Kafka node named {', '.join(unknown)} in cluster {status.name}",
                             hint="nodes: " + ", ".join(n.name for n in status.nodes if n.role != "zookeeper"))
    ctl = status.kafka.get("controller")
    rank = {"broker": 0, "combined": 0, "controller": 1}
    return sorted(nodes, key=lambda n: (n.id == ctl, rank.get(n.role, 0), n.name))


def rolling_restart(driver, spec, *, nodes: list[str] | None, timeout: float, log,
                    force: bool = False) -> list[dict]:
    st = driver.status(spec)
    if st.state == "not-found":
        from .errors import NotFoundError

        raise NotFoundError(f"cluster {spec.name} not found", hint="kops up first")
    if st.state != "healthy" and not force:
        raise KopsError(f"cluster {spec.name} is {st.state}: " + "; ".join(st.problems),
                        hint="a rolling restart of an unhealthy cluster risks availability: fix it first "
                             "(kops up), or pass --force")
    done = []
    deadline = time.monotonic() + timeout
    for n in order(st, nodes):
        t0 = time.monotonic()
        if n.role in ("broker", "combined"):
            blockers: list[str] = []

            def safe():
                blockers[:] = health.restart_blockers(st.bootstrap, n.id)
                if blockers:
                    raise health.NotYet(f"{len(blockers)} partition(s) would drop below min.insync.replicas: "
                                        + ", ".join(blockers[:5]))
                return True

            try:
                health.wait_until(f"{n.name} to be safe to restart", safe, deadline=deadline, interval=1)
            except WaitTimeout as exc:
                raise KopsError(f"not restarting {n.name}: stopping it now would take "
                                f"{len(blockers)} partition(s) below min.insync.replicas",
                                details="\n".join(blockers[:20]),
                                hint="wait for those partitions' ISR to catch up (kops status), or add "
                                     "replicas; nothing after this node was restarted") from exc
        log(f"{n.name}: restarting")
        driver.restart_node(spec, n.name)

        def healthy():
            s = driver.status(spec)
            if s.state != "healthy":
                raise health.NotYet("; ".join(s.problems) or s.state)
            return s

        st = health.wait_until(f"the cluster to be healthy after restarting {n.name}", healthy,
                               deadline=deadline, interval=1, settle=3.0)
        secs = time.monotonic() - t0
        log(f"{n.name}: back, cluster healthy ({secs:.1f} s)")
        done.append({"node": n.name, "seconds": round(secs, 1)})
    return done
