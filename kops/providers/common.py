"""What both providers share: the log lines of several nodes, labelled and interleaved by
time, or followed as they come."""

from __future__ import annotations


def labeller(nodes: list[str], prefix: bool):
    width = max((len(n) for n in nodes), default=0)
    return (lambda n: f"{n:<{width}} | ") if prefix else (lambda n: "")


def interleaved(texts: dict[str, str], label, prefix: bool, message):
    """Each node's "<timestamp> <rest>" lines; ordered by time across nodes when
    ``prefix`` (all nodes), each reduced to ``message(rest)`` behind its label."""
    rows = [(stamp, n, message(rest)) for n, text in texts.items()
            for stamp, _, rest in (line.partition(" ") for line in text.splitlines())]
    if prefix:
        rows.sort(key=lambda r: r[0])
    for _, n, text in rows:
        yield label(n) + text


def merged(nodes: list[str], pump):
    """Lines from one reader thread per node, as they arrive (for --follow)."""
    import queue
    import threading

    out: queue.Queue = queue.Queue()
    for n in nodes:
        threading.Thread(target=pump, args=(n, out), daemon=True).start()
    while True:
        yield out.get()
