"""Kafka Connect: distributed workers (``connect1..N``) of one group, from the same
distribution and image as the brokers.

What a worker runs is rendered here (``connect-distributed.properties``: the group, its
internal topics with replication factor min(3, brokers), the REST listener, plugin.path
with Kafka's FileStream connectors and MirrorMaker 2); the node's argv comes from
:mod:`kops.launch` like every other node's. The REST API is reached from this machine on
each worker's published address; readiness is observed: every worker's REST API answers,
its /health says it started and joined the group, and it lists Kafka's plugins. (librdkafka
cannot describe a group of the "connect" protocol, so the group is not read from the brokers.)
"""

from __future__ import annotations

import json

from kops.artifacts import dist, plugins as extra_plugins
from kops.core import paths
from kops.core.errors import InputError, KopsError, NotFoundError
from kops.core import wait as waiting
from kops.kafka.health import NotYet
from kops.bundle.launch import CONNECT_PROPERTIES

# Plugins the workers must list before Connect counts as ready (Kafka's own, always there)
BUILTIN_PLUGINS = ("org.apache.kafka.connect.file.FileStreamSourceConnector",
                   "org.apache.kafka.connect.file.FileStreamSinkConnector",
                   "org.apache.kafka.connect.mirror.MirrorSourceConnector",
                   "org.apache.kafka.connect.mirror.MirrorCheckpointConnector",
                   "org.apache.kafka.connect.mirror.MirrorHeartbeatConnector")
TIMEOUT = 10.0


def group_id(spec) -> str:
    return spec.connect_group


# the worker's own clients, then its connectors' producers, consumers and admin clients
SECURITY_PREFIXES = ("", "producer.", "consumer.", "admin.")


def worker_settings(topo, node, lay, security: list[tuple[str, str]] = ()) -> list[tuple[str, object]]:
    """The worker's properties, kops's keys first, then the inventory's (connect.config and
    nodes.connectN.config; the managed keys are refused on the spec). ``security``: the Kafka
    client security settings of a secure cluster (kops.bundle.render.service_client), given
    to the worker itself and, under producer./consumer./admin., to its connectors' clients."""
    spec = topo.spec
    group = group_id(spec)
    rf = min(3, len(topo.brokers))
    bind = topo.bind_host(node)
    port = node.ports["rest"]
    managed = [
        ("bootstrap.servers", topo.internal_bootstrap),
        ("group.id", group),
        ("config.storage.topic", f"{group}-configs"),
        ("offset.storage.topic", f"{group}-offsets"),
        ("status.storage.topic", f"{group}-status"),
        ("config.storage.replication.factor", rf),
        ("offset.storage.replication.factor", rf),
        ("status.storage.replication.factor", rf),
        ("listeners", f"http://{bind}:{port}"),
        # how the other workers reach this one (requests are forwarded to the leader)
        ("rest.advertised.host.name", node.hostname),
        ("rest.advertised.port", port),
        # Kafka's own plugins, then the inventory's (connect.plugins, kops.plugins), a folder each
        ("plugin.path", f"{lay.home}/{dist.PLUGINS_DIR}"
                        + (f",{lay.conf_dir}/{extra_plugins.DIR}" if spec.connect.plugins else "")),
    ]
    managed += [(prefix + key, value) for prefix in SECURITY_PREFIXES for key, value in security]
    defaults = {"key.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "offset.flush.interval.ms": 10000,
                # KIP-898: plugins found through their ServiceLoader manifests (Kafka's own have them)
                # instead of scanning every class of the worker's class path: a much faster start.
                # Extra plugins may lack the manifests: then scan too (and warn), as Kafka does by default
                "plugin.discovery": "hybrid_warn" if spec.connect.plugins else "service_load"}
    return managed + list({**defaults, **node.config}.items())


def node_files(topo, node, lay, security: list[tuple[str, str]] = ()) -> dict[str, str]:
    from kops.bundle.render import render_template

    files = {CONNECT_PROPERTIES: render_template("connect/connect-distributed.properties.j2", cluster=topo.name,
                                                 node=node, version=topo.version, secure=bool(security),
                                                 settings=worker_settings(topo, node, lay, security))}
    if topo.spec.connect.plugins:
        files[f"{extra_plugins.DIR}.txt"] = extra_plugins.manifest(topo.spec)
    return files


# -- the REST API -------------------------------------------------------------------------------

def _url(address: str, path: str) -> str:
    return f"http://{address}{path}"


def call(address: str, method: str, path: str, body: dict | None = None, timeout: float = TIMEOUT):
    """One REST call; the decoded JSON (None for an empty answer). A refused request is a
    KopsError carrying Connect's own message."""
    import requests

    try:
        resp = requests.request(method, _url(address, path), json=body, timeout=timeout,
                                headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise KopsError(f"Kafka Connect at {address} does not answer: {exc.__class__.__name__}",
                        hint="kops status shows the workers; kops up starts a stopped one") from exc
    if resp.status_code == 404:
        raise NotFoundError(f"Kafka Connect at {address}: {_message(resp)}")
    if resp.status_code >= 400:
        raise KopsError(f"Kafka Connect at {address} refused {method} {path} (HTTP {resp.status_code}): "
                        f"{_message(resp)}")
    return resp.json() if resp.content else None


def _message(resp) -> str:
    """Connect's own error message ({"error_code", "message"}), else the HTTP reason (Jetty's
    HTML pages say nothing more)."""
    try:
        body = resp.json()
        return str(body.get("message", body) if isinstance(body, dict) else body)[:500]
    except ValueError:
        return resp.reason or f"HTTP {resp.status_code}"


def plugins(address: str, timeout: float = TIMEOUT) -> list[str]:
    return sorted(p["class"] for p in call(address, "GET", "/connector-plugins", timeout=timeout) or [])


def connectors(address: str, timeout: float = TIMEOUT) -> dict[str, dict]:
    """name -> {"state", "type", "tasks": [state, ...], "worker"} (one call: ?expand=status)."""
    got = call(address, "GET", "/connectors?expand=status", timeout=timeout) or {}
    out = {}
    for name, info in sorted(got.items()):
        st = info.get("status") or {}
        out[name] = {"state": (st.get("connector") or {}).get("state", "?"), "type": st.get("type", "?"),
                     "worker": (st.get("connector") or {}).get("worker_id", ""),
                     "tasks": [t.get("state", "?") for t in st.get("tasks") or []]}
    return out


MAX_CONNECTOR_BYTES = 1 << 20   # a connector's JSON: a few KiB in practice


def load_connector(path: str) -> tuple[str, dict]:
    """A connector definition from a JSON file: {"name": ..., "config": {...}} (as the REST
    API takes it) or a flat config with a "name" key. Bad input (exit 2) otherwise."""
    example = 'e.g. {"name": "src", "config": {"connector.class": "FileStreamSource", "file": "/tmp/in.txt", "topic": "t"}}'
    try:
        data = paths.load_json(paths.read_input(path, "connector file", MAX_CONNECTOR_BYTES), str(path))
    except InputError as exc:
        exc.hint = exc.hint or example
        raise
    if not isinstance(data, dict):
        raise InputError(f"{path}: a JSON object is needed, with name and config")
    config = data.get("config", {k: v for k, v in data.items() if k != "name"})
    name = data.get("name") or (config.get("name") if isinstance(config, dict) else None)
    if not isinstance(name, str) or not name or not isinstance(config, dict) or "connector.class" not in config:
        raise InputError(f"{path}: needs a name and a config with connector.class",
                         hint='{"name": "src", "config": {"connector.class": "FileStreamSource", ...}}')
    bad = [k for k, v in config.items() if not isinstance(v, (str, int, float, bool))]
    if bad:
        raise InputError(f"{path}: config values must be strings, numbers or booleans: {', '.join(bad[:5])}")
    return name, {k: (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in config.items()}


# -- readiness and status -------------------------------------------------------------------------

def health(address: str, timeout: float = 5.0) -> tuple[bool, str]:
    """KIP-1017's /health (Kafka 3.9+): 200 once the worker has started, read its config topic
    and joined its group (the herder answers it from its loop, which runs only as a member)."""
    import requests

    try:
        resp = requests.get(_url(address, "/health"), timeout=timeout)
    except requests.RequestException as exc:
        return False, f"REST API not answering yet ({exc.__class__.__name__})"
    if resp.status_code == 200:
        return True, "healthy"
    return False, f"{_message(resp)} (HTTP {resp.status_code})"


def ready_probe(topo, addresses: dict[str, str]):
    """The connect-ready gate's probe: raises NotYet until every worker's REST API answers,
    every worker is healthy (started, joined the group) and lists Kafka's plugins."""
    group = group_id(topo.spec)

    def probe():
        for name, addr in addresses.items():
            ok, why = health(addr)
            if not ok:
                raise NotYet(f"{name}: {why}")
            try:
                listed = set(plugins(addr, timeout=5))
            except KopsError as exc:
                raise NotYet(f"{name}: {exc.message}") from None
            missing = [p.rsplit(".", 1)[-1] for p in BUILTIN_PLUGINS if p not in listed]
            if missing:
                raise NotYet(f"{name}: plugins not listed: {', '.join(missing)}")
        return f"{len(addresses)} worker(s) in group {group}"
    return probe


def worker_status(address: str, timeout: float = 3.0) -> dict:
    """A running worker as the status shows it: its version and the connectors it sees."""
    try:
        root = call(address, "GET", "/", timeout=timeout) or {}
        found = connectors(address, timeout=timeout)
    except KopsError as exc:
        return {"error": exc.message.rsplit(": ", 1)[-1]}
    return {"version": root.get("version"), "connectors": found}


# -- the library behind `kops connect` -------------------------------------------------------------




def _path(name: str) -> str:
    from urllib.parse import quote

    if not name or len(name) > 249 or name in (".", "..") or any(not c.isprintable() for c in name):
        # "." and ".." would name another REST path (/connectors/../config is /config); control
        # characters would reach the terminal
        raise InputError(f"connector name {name[:60]!r} is not usable",
                         hint="1-249 printable characters, not '.' or '..'")
    return quote(name, safe="")


def _first(addresses: list[str], method: str, path: str, body: dict | None = None):
    """The call on the first worker that answers (any worker forwards to the leader)."""
    last: KopsError | None = None
    for addr in addresses:
        try:
            return call(addr, method, path, body)
        except NotFoundError:
            raise
        except KopsError as exc:
            if "does not answer" not in exc.message:
                raise
            last = exc
    raise last or KopsError("no Kafka Connect worker to ask")


def create(addresses: list[str], name: str, config: dict) -> dict:
    """Create or update a connector (PUT /connectors/NAME/config: the same call twice is a no-op)."""
    return _first(addresses, "PUT", f"/connectors/{_path(name)}/config", {**config, "name": name})


def status_of(addresses: list[str], name: str) -> dict:
    return _first(addresses, "GET", f"/connectors/{_path(name)}/status")


def restart(addresses: list[str], name: str) -> dict | None:
    """Restart the connector and its tasks (KIP-745)."""
    return _first(addresses, "POST", f"/connectors/{_path(name)}/restart?includeTasks=true&onlyFailed=false")


def delete(addresses: list[str], name: str) -> None:
    _first(addresses, "DELETE", f"/connectors/{_path(name)}")


def list_all(addresses: list[str]) -> dict[str, dict]:
    last = None
    for addr in addresses:
        try:
            return connectors(addr)
        except KopsError as exc:
            last = exc
    raise last or KopsError("no Kafka Connect worker to ask")


@waiting.gate("connect-ready", "Kafka Connect to be ready (every worker's REST API answering with the plugins "
                               "listed, every worker in the group)")
def _connect_ready(ctx, action):
    workers = [n for n in ctx.topo.connects if not action.nodes or n.name in action.nodes]
    probe = ready_probe(ctx.topo, {n.name: ctx.topo.rest_address(n) for n in workers})
    group = group_id(ctx.topo.spec)
    return probe, lambda n, secs: (f"kafka connect ready in {secs:.1f} s: {len(ctx.topo.connects)} worker(s) in "
                                   f"group {group}, REST on {', '.join(ctx.topo.rest_address(w) for w in workers)}")
