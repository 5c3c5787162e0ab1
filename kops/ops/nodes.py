"""`kops exec NODE -- CMD...` and `kops shell NODE`: a command or a shell on one node, the
same on both drivers, in the node's environment (Kafka's tools on PATH, the cluster
network's ``KAFKA_BOOTSTRAP_SERVERS``, ``KOPS_CLIENT_CONFIG``; see kops.render.node_env).

The node is found the way every command finds a cluster (observe), so an unknown node is
bad input (exit 2, the nodes there are named) and a stopped one is exit 3; the command's
own exit code is the result.
"""

from __future__ import annotations

from kops.core.errors import InputError, NotFoundError
from kops.orchestration.lifecycle import _observe
from kops.model.spec import ClusterSpec

# An interactive shell: bash where the image or host has it, else sh.
SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"]


def attach(spec: ClusterSpec | None, provider, node: str, argv: list[str], *, name: str | None = None,
           tty: bool = False, scope: str = "") -> int:
    """Run ``argv`` on ``node`` attached to this terminal; the command's exit code."""
    if not argv:
        raise InputError("no command given", hint=f"kops exec{scope} {node} -- kafka-topics.sh --help")
    topo, bundle, observed = _observe(spec, provider)
    cluster = spec.name if spec else name
    known = sorted(set(observed.nodes) | ({n.name for n in topo.nodes} if topo else set()))
    if not observed.nodes:
        raise NotFoundError(f"cluster {cluster} not found", hint=f"kops up{scope} creates it")
    if node not in known:
        raise InputError(f"cluster {cluster} has no node {node!r}", hint="nodes: " + ", ".join(known))
    obs = observed.nodes.get(node)
    if obs is None:
        raise NotFoundError(f"{node} of cluster {cluster} does not exist (yet)", hint=f"kops up{scope} creates it")
    if not obs.running:
        raise NotFoundError(f"{node} of cluster {cluster} is not running ({obs.state})",
                            hint=f"kops up{scope} starts it; kops logs {node}{scope} shows why it stopped")
    env = bundle.nodes[node].env if bundle is not None and node in bundle.nodes else None
    return provider.exec_attached(node, list(argv), tty=tty, env=env)
