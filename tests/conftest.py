"""Shared pytest wiring: tests/ on sys.path (tests/kopsrun.py), the --update-golden option and
a Docker client for integration tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# tests/ itself is importable from every tier (unit, integration, e2e), whatever pytest's
# import mode: the suite's one kops runner and poll helper, `from kopsrun import kops, ok, poll`.
TESTS = str(Path(__file__).resolve().parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

# A user's own `eval "$(kops env --name X)"` exports KOPS_CLUSTER, which every kops command
# takes as its --name: the suite's commands name their own clusters, never the user's.
os.environ.pop("KOPS_CLUSTER", None)

SETUP_HINT = "run `make test` (or scripts/setup.sh) to install and start a Docker engine"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ from the current templates instead of comparing")


@pytest.fixture(scope="session")
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))


HELLO_SOURCE = "kops.test.HelloSource"


@pytest.fixture(scope="session")
def hello_plugin_jar(tmp_path_factory):
    """A Connect source connector (tests/plugin_src) built here into a local jar with javac
    against Kafka 3.9.2's jars: `count` greetings to `topic`."""
    import shutil
    import subprocess
    import zipfile
    from pathlib import Path

    from kops.artifacts import dist

    javac = shutil.which("javac")
    assert javac, "javac (a JDK) is needed to build the test plugin"
    d = dist.cached("3.9.2")
    assert d is not None, "Kafka 3.9.2 is not in the cache: scripts/setup.sh fetches it"
    out = tmp_path_factory.mktemp("hello-plugin")
    classes = out / "classes"
    src = sorted(str(p) for p in (Path(__file__).parent / "plugin_src").rglob("*.java"))
    r = subprocess.run([javac, "--release", "17", "-cp", f"{d.path}/libs/*", "-d", str(classes), *src],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    jar = out / "hello-source.jar"
    with zipfile.ZipFile(jar, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
        z.writestr("META-INF/services/org.apache.kafka.connect.source.SourceConnector", HELLO_SOURCE + "\n")
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
    return jar


@pytest.fixture(scope="session")
def docker_client():
    """A pinged Docker SDK client; fails (never skips) when no engine answers."""
    import docker

    problem = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, requests errors, missing socket...
        problem = exc
    if problem is not None:  # failed outside the except: no chained traceback, just the hint
        pytest.fail(f"no Docker engine answers ({problem}); {SETUP_HINT}", pytrace=False)
    yield client
    client.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report as ``item.rep_setup`` / ``rep_call`` (for clean-up fixtures)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


# -- a bystander: the user's own cluster, running while the suite runs ------------------------------
# The suite must pass beside a cluster it did not make, and leave it untouched. When the
# default cluster (`make up`) is running, it is watched; in CI, where none is, one is started
# as a stand-in (with a state folder of its own) and removed afterwards. At the end, its
# containers must have the same ids and start times as before.

_BYSTANDER: dict = {}
DEFAULT_CLUSTER = "zk-single-kafka-single"


def _default_cluster_containers():
    import docker

    client = docker.from_env()
    return {c.name: (c.id, c.attrs["State"]["StartedAt"], c.status)
            for c in client.containers.list(all=True, filters={"label": f"io.kops.cluster={DEFAULT_CLUSTER}"})}


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")   # a pytest-xdist worker: the controller watches


def pytest_collection_finish(session):
    if _is_worker(session.config):
        return
    if not any(item.get_closest_marker("integration") or item.get_closest_marker("e2e") for item in session.items):
        return
    _watch_bystander(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """Under pytest-xdist the controller collects nothing itself: the first worker's list
    of tests tells whether this run has integration or end-to-end tests."""
    if _BYSTANDER.get("decided"):
        return
    _BYSTANDER["decided"] = True
    if any(i.startswith(("tests/integration/", "tests/e2e/")) for i in ids):
        _watch_bystander(node.config)


def _watch_bystander(config):
    import os
    import subprocess
    import tempfile

    from kopsrun import KOPS

    if config.getoption("--collect-only"):
        return
    try:
        before = _default_cluster_containers()
    except Exception:  # noqa: BLE001 - no engine: the integration tests say so themselves
        return
    running = before and all(v[2] == "running" for v in before.values())
    if not running and os.environ.get("CI") == "true" and not before:
        state = tempfile.mkdtemp(prefix="kops-bystander-")
        env = {**os.environ, "KOPS_STATE_DIR": state}
        proc = subprocess.run([KOPS, "up"], env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"the bystander cluster did not come up:\n{proc.stdout}\n{proc.stderr}")
        _BYSTANDER.update(started_here=True, env=env, kops=KOPS)
        before = _default_cluster_containers()
    elif not running:
        return
    _BYSTANDER["before"] = before


def pytest_sessionfinish(session, exitstatus):
    import subprocess

    if "before" not in _BYSTANDER:
        return
    after = _default_cluster_containers()
    changed = {k: (v, after.get(k)) for k, v in _BYSTANDER["before"].items() if after.get(k) != v}
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if changed:
        if tr:
            tr.write_line(f"the suite changed the default cluster {DEFAULT_CLUSTER}, which it did not make: {changed}",
                          red=True)
        session.exitstatus = 1
    elif tr:
        tr.write_line(f"bystander: the default cluster {DEFAULT_CLUSTER} ran through the whole suite, untouched "
                      f"({len(after)} containers, same ids and start times)")
    if _BYSTANDER.get("started_here"):
        subprocess.run([_BYSTANDER["kops"], "down", "--preset", DEFAULT_CLUSTER, "--purge"], env=_BYSTANDER["env"],
                       capture_output=True,
                       timeout=300)


# The longest test files first, so that with xdist (one file per worker, `--dist loadfile`)
# they do not start last and keep the run going alone at its end (longest-first scheduling).
# Seconds seen on this machine under the suite's own load; a file not named keeps its place.
SLOW_FIRST = {
    "tests/integration/test_security.py": 390,
    "tests/integration/test_migrate.py": 420,
    "tests/integration/test_migrate_rollback.py": 260,
    "tests/e2e/test_ssh_migrate.py": 520,
    "tests/integration/test_docker_driver.py": 300,
    "tests/integration/test_pytest_plugin.py": 150,
    "tests/e2e/test_ssh_driver.py": 460,
    "tests/integration/test_scale_kraft.py": 150,
    "tests/integration/test_dynamic_quorum.py": 290,
    "tests/integration/test_upgrade_scale.py": 280,
    "tests/integration/test_schema_registry.py": 130,
    "tests/e2e/test_ssh_metrics_connect.py": 110,
    "tests/integration/test_connect_mirror.py": 80,
    "tests/integration/test_connect_plugins.py": 60,
    "tests/integration/test_truth.py": 220,
    "tests/integration/test_balance.py": 150,
    "tests/integration/test_leaders_auth.py": 100,
    "tests/integration/test_secure_services.py": 100,
    "tests/e2e/test_ssh_scale.py": 250,
    "tests/integration/test_acls.py": 330,
    "tests/integration/test_ui.py": 120,
    "tests/integration/test_faults.py": 180,
}


def pytest_collection_modifyitems(session, config, items):
    order = {path: i for i, path in enumerate(sorted(SLOW_FIRST, key=SLOW_FIRST.get, reverse=True))}
    items.sort(key=lambda item: order.get(item.nodeid.split("::", 1)[0], len(order)))   # stable: the rest keep order
