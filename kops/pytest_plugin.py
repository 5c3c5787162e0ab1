"""A pytest plugin: a real Kafka cluster for a test session (registered as ``pytest11``).

    def test_orders(kafka_cluster):
        topic = kafka_cluster.topic(partitions=3)
        producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap_servers})
        ...
        kafka_cluster.kill("kafka1")      # fault tests: stop / kill / start a node
        with kafka_cluster.fault("kafka2", "pause", seconds=20):   # or slow, lose, partition
            ...                           # healed when the block ends (or after 20 s)

Options (command line, or ``[pytest] kops_preset = ...`` in the ini file):
  --kops-preset NAME      the preset to start (default kraft-single; any preset of kops)
  --kops-inventory FILE   an inventory instead of a preset
  --kops-name NAME        the cluster's name (default pytest-<preset>-<6 hex>, or
                          pytest-<preset> with --kops-reuse); a name ending in '-' is a prefix
                          that gets 6 hex digits, for several sessions on one engine
  --kops-reuse            keep the cluster after the session and reuse it next time (found
                          by its name on the Docker engine; nothing is restarted); the
                          topics ``topic()`` made are deleted at the session's end
  --kops-artifacts DIR    where a failed test leaves the nodes' logs and the status JSON
                          (default .kops-artifacts)
The cluster runs under a name and on host ports of its own (``--name``, ``ports: auto``), so
it never collides with another cluster, another session, or a user's own.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("kops", "a real Kafka cluster (kops)")
    group.addoption("--kops-preset", default=None, help="preset of the kafka_cluster fixture (default kraft-single)")
    group.addoption("--kops-inventory", default=None, help="inventory file of the kafka_cluster fixture")
    group.addoption("--kops-name", default=None,
                    help="name of the kafka_cluster fixture's cluster (ending in '-': a prefix)")
    group.addoption("--kops-reuse", action="store_true", default=False,
                    help="keep the cluster after the session and reuse it the next time")
    group.addoption("--kops-artifacts", default=None, help="folder for logs and status of failed tests")
    parser.addini("kops_preset", "preset of the kafka_cluster fixture", default="kraft-single")
    parser.addini("kops_inventory", "inventory file of the kafka_cluster fixture", default="")
    parser.addini("kops_name", "name (or prefix ending in '-') of the kafka_cluster fixture's cluster", default="")
    parser.addini("kops_artifacts", "folder for logs and status of failed tests", default=".kops-artifacts")


def pytest_configure(config):
    config.addinivalue_line("markers", "kops: uses the kafka_cluster fixture (a real Kafka cluster)")
    given = config.getoption("--kops-name", None) or config.getini("kops_name") or None
    if given:
        from kops.model.spec import NAME_RE

        if not NAME_RE.fullmatch(given + "abcdef" if given.endswith("-") else given):
            raise pytest.UsageError(f"--kops-name {given!r} is not a cluster name: 1-32 lowercase letters, digits "
                                    "and '-', starting with a letter (a prefix ends in '-', then 6 hex digits)")


class KafkaCluster:
    """The cluster of a test session: where it is, and a few hands on it."""

    def __init__(self, spec, log=lambda m: None):
        from kops.orchestration import lifecycle
        from kops.providers import for_spec

        self.spec = spec
        self.name = spec.name
        self._log = log
        self._provider = for_spec(spec, log)
        self._lifecycle = lifecycle
        self.status_data: dict = {}
        self._client = None
        self.topics_made: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def up(self, timeout: float = 300) -> "KafkaCluster":
        res = self._lifecycle.up(self.spec, self._provider, timeout=timeout, log=self._log,
                                 source=f"pytest {self.name}")
        self.status_data = res.status.as_dict()
        return self

    def status(self, wait: float = 0) -> dict:
        """The cluster's status (``kops status --output json``); ``wait``: seconds a degraded
        cluster is looked at again before it is returned (``kops status --wait``)."""
        self.status_data = self._lifecycle.get_status(self.spec, self._provider, wait=wait).as_dict()
        return self.status_data

    def purge(self) -> None:
        self._lifecycle.down(self.spec, self._provider, purge=True, log=self._log)
        self._provider.close()

    # -- for tests ---------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return self.status_data.get("bootstrap_servers") or self.status()["bootstrap_servers"]

    @property
    def client_config(self) -> dict:
        """librdkafka settings that reach this cluster (its security settings included)."""
        from kops.orchestration import lifecycle

        c = lifecycle.client_for(self.name, self.bootstrap_servers, self.status_data.get("security"))
        return {"bootstrap.servers": c.bootstrap, **dict(c.settings)}

    def admin(self):
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.client_config)

    def topic(self, name: str | None = None, partitions: int = 1, replication: int | None = None,
              config: dict | None = None, timeout: float = 30) -> str:
        """Create a topic (a fresh name unless given) and wait until every partition has a leader."""
        from confluent_kafka.admin import NewTopic

        name = name or f"test-{uuid.uuid4().hex[:10]}"
        brokers = len((self.status_data.get("kafka") or {}).get("brokers") or {}) or 1
        rf = replication or min(3, brokers)
        admin = self.admin()
        admin.create_topics([NewTopic(name, partitions, rf, config=config or {})])[name].result(timeout)
        self.topics_made.append(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            md = admin.list_topics(name, timeout=10).topics.get(name)
            if md and md.error is None and len(md.partitions) == partitions and all(
                    p.leader >= 0 for p in md.partitions.values()):
                return name
            time.sleep(0.2)
        raise TimeoutError(f"topic {name} has no leader for every partition after {timeout:.0f} s")

    def drop_topics_made(self, timeout: float = 30) -> None:
        """Delete the topics ``topic()`` made (a reused cluster does not pile them up)."""
        from kops.kafka import health

        if self.topics_made:
            health.drop_topics(self._kops_client(), self.topics_made, timeout)
            self.topics_made = []

    def _kops_client(self):
        from kops.orchestration import lifecycle

        return lifecycle.client_for(self.name, self.bootstrap_servers, self.status_data.get("security"))

    def _container(self, node: str):
        containers = self._provider.containers()
        if node not in containers:
            raise KeyError(f"cluster {self.name} has no node {node!r}; nodes: {', '.join(sorted(containers))}")
        return containers[node]

    def stop(self, node: str) -> None:
        """Stop a node gracefully (a broker's controlled shutdown)."""
        c = self._container(node)
        c.stop(timeout=int(c.labels.get("io.kops.stop-grace", "30")))

    def kill(self, node: str) -> None:
        """Kill a node at once (SIGKILL): a crash."""
        self._container(node).kill()

    def start(self, node: str, timeout: float = 120) -> None:
        """Start a stopped or killed node again and wait until the cluster is ready."""
        res = self._lifecycle.up(self.spec, self._provider, timeout=timeout, log=self._log,
                                 source=f"pytest {self.name}")
        self.status_data = res.status.as_dict()

    def logs(self, node: str, lines: int = 200) -> str:
        return self._provider.tail(node, lines)

    @contextmanager
    def fault(self, node: str, kind: str = "pause", seconds: float | None = None, *, delay: str | float | None = None,
              loss: str | float | None = None, clients: bool = False):
        """A fault on ``node`` while the ``with`` block runs (``kops fault``): kill, pause, slow
        (``delay="200ms"``, ``loss="5%"``), lose (``loss``) or partition (``clients``: the
        clients cut off too). Healed when the block ends, or after ``seconds`` if sooner.

            with kafka_cluster.fault("kafka2", "pause", seconds=20):
                ...   # produce, consume, assert
        """
        import threading

        from kops.ops import faults

        st = self._lifecycle.get_status(self.spec, self._provider)
        faults.inject(st, self._provider, node, kind, duration=seconds, clients=clients, log=self._log,
                      delay_ms=faults.parse_delay(delay) if delay is not None else None,
                      loss_pct=faults.parse_loss(loss) if loss is not None else None)
        lock = threading.Lock()

        def heal():
            with lock:
                faults.heal(self.name, self._provider, node, log=self._log)

        timer = threading.Timer(seconds, heal) if seconds else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            yield self
        finally:
            if timer is not None:
                timer.cancel()
            heal()


def _spec(config):
    from kops.model import inventory

    inv = config.getoption("--kops-inventory") or config.getini("kops_inventory") or None
    preset = None if inv else (config.getoption("--kops-preset") or config.getini("kops_preset") or "kraft-single")
    spec = inventory.load(inv, preset)
    if spec.driver != "docker":
        raise pytest.UsageError("the kafka_cluster fixture runs on the Docker engine (driver: docker)")
    given = config.getoption("--kops-name") or config.getini("kops_name") or None
    reuse = config.getoption("--kops-reuse")
    if given and not given.endswith("-"):
        name = given
    else:
        base = given.rstrip("-") if given else f"pytest-{spec.name}"
        name = base[:32].rstrip("-") if reuse and not given else base[:25].rstrip("-") + "-" + uuid.uuid4().hex[:6]
    return spec.model_copy(update={"name": name, "ports": "auto"})


def _say(config, line: str) -> None:
    """A line on the terminal, past output capturing."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    cap = config.pluginmanager.get_plugin("capturemanager")
    if tr is None:
        return
    if cap is not None:
        with cap.global_and_fixture_disabled():
            tr.write_line(line)
    else:
        tr.write_line(line)


@pytest.fixture(scope="session")
def kafka_cluster(request):
    """A real Kafka cluster for the session (see the module's docstring for its options)."""
    from kops.core.errors import KopsError

    spec = _spec(request.config)
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    log = (lambda m: tr.write_line(f"kops: {m}")) if tr and request.config.getoption("verbose") > 0 else (lambda m: None)
    cluster = KafkaCluster(spec, log)
    t0 = time.monotonic()
    try:
        cluster.up()
    except KopsError as exc:
        pytest.fail(f"kops could not bring up {spec.name}: {exc.message}\n{exc.details or ''}", pytrace=False)
    request.config._kops_cluster = cluster
    _say(request.config, f"kops: {spec.name} ready in {time.monotonic() - t0:.1f} s at {cluster.bootstrap_servers}")
    yield cluster
    if not request.config.getoption("--kops-reuse"):
        cluster.purge()
        return
    try:
        cluster.drop_topics_made()
    except KopsError as exc:   # the session's result stands; the next one says what is left
        _say(request.config, f"kops: the topics of this session could not be deleted: {exc.message}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    cluster = getattr(item.config, "_kops_cluster", None)
    if rep.when != "call" or not rep.failed or cluster is None or "kafka_cluster" not in item.fixturenames:
        return
    folder = Path(item.config.getoption("--kops-artifacts") or item.config.getini("kops_artifacts"))
    target = folder / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[:150]
    target.mkdir(parents=True, exist_ok=True)
    try:
        status = cluster.status()
    except Exception as exc:  # noqa: BLE001 - the artifacts say what could not be read, the test result stands
        status = {"error": f"{exc.__class__.__name__}: {exc}"}
    (target / "status.json").write_text(json.dumps(status, indent=2, default=str))
    for node in status.get("nodes", []):
        (target / f"{node['name']}.log").write_text(cluster.logs(node["name"]))
    rep.sections.append(("kops", f"the cluster's status and node logs: {os.path.abspath(target)}"))
