"""Prometheus metrics: the JMX exporter java agent on every JVM, its endpoints, scraping.

The agent (``io.prometheus.jmx:jmx_prometheus_javaagent`` from Maven) lives in the
distribution's ``agents/`` folder, so the image and the tarball pushed to SSH hosts carry
it. Each node runs it with a rules file rendered in the bundle (``metrics.yml``, from
``templates/metrics/``) and serves ``http://ADDRESS:PORT/metrics``. The figures the status
shows are read here (a plain HTTP GET, a short timeout, in parallel).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

AGENT_GROUP = "io.prometheus.jmx"
AGENT_ARTIFACT = "jmx_prometheus_javaagent"
AGENT_VERSION = "1.0.1"
# SHA-256 of the jar on Maven Central (checked after every fetch: a mismatch keeps nothing)
AGENT_SHA256 = "7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1"
AGENT_JAR = f"{AGENT_ARTIFACT}-{AGENT_VERSION}.jar"
AGENTS_DIR = "agents"
RULES_FILE = "metrics.yml"

# The names the rules produce, as the status reads them
UNDER_REPLICATED = "kafka_server_replicamanager_underreplicatedpartitions"
OFFLINE = "kafka_controller_kafkacontroller_offlinepartitionscount"
ACTIVE_CONTROLLER = "kafka_controller_kafkacontroller_activecontrollercount"
ZK_CONNECTIONS = "zookeeper_numaliveconnections"
CONNECTORS = "kafka_connect_worker_connector_count"
SHOWN = {UNDER_REPLICATED: "under_replicated", OFFLINE: "offline", ACTIVE_CONTROLLER: "active_controller",
         ZK_CONNECTIONS: "zk_connections", CONNECTORS: "connectors"}


def agent_path(home: str) -> str:
    return f"{home}/{AGENTS_DIR}/{AGENT_JAR}"


def agent_flag(home: str, bind: str, port: int, rules: str) -> str:
    """``-javaagent:JAR=[HOST:]PORT:RULES`` (the exporter's own syntax)."""
    return f"-javaagent:{agent_path(home)}={bind}:{port}:{rules}"


def template_for(role: str) -> str:
    return {"zookeeper": "metrics/zookeeper.yml.j2", "connect": "metrics/connect.yml.j2"}.get(
        role, "metrics/kafka.yml.j2")


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')


def parse(text: str) -> dict[str, float]:
    """Prometheus text format -> metric name -> the sum of its samples (labels summed)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def scrape(address: str, timeout: float = 2.0) -> dict[str, float]:
    """GET http://ADDRESS/metrics, parsed; raises requests' errors."""
    import requests

    resp = requests.get(f"http://{address}/metrics", timeout=timeout)
    resp.raise_for_status()
    return parse(resp.text)


def figures(address: str, timeout: float = 3.0) -> dict:
    """The few figures the status shows, or {"error": ...}."""
    try:
        values = scrape(address, timeout)
    except Exception as exc:   # a node that does not answer: said in the figures, never fatal
        return {"error": f"{exc.__class__.__name__}"}
    return {short: int(values[name]) for name, short in SHOWN.items() if name in values}


def collect(addresses: dict[str, str], timeout: float = 3.0) -> dict[str, dict]:
    """node -> figures, every endpoint at once."""
    if not addresses:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(addresses))) as pool:
        return dict(zip(addresses, pool.map(lambda a: figures(a, timeout), addresses.values())))


def prometheus_config(topo) -> str:
    """A Prometheus scrape config for the cluster: one job, one target per node, labelled
    with its cluster, node and role (the host address: Prometheus on this machine)."""
    from kops.bundle.render import render_template

    targets = [{"address": topo.addresses(n)["metrics"], "node": n.name, "role": n.role}
               for n in topo.nodes if "metrics" in n.ports]
    return render_template("metrics/prometheus.yml.j2", cluster=topo.name, targets=targets)
