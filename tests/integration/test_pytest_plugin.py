"""The pytest plugin kops ships (``pytest11`` entry point), proven with pytester: an inner
test session gets a real cluster from the ``kafka_cluster`` fixture, produces and consumes
through it, a failing test leaves the nodes' logs and the status JSON in the artifacts
folder, ``kill``/``start`` work, and ``--kops-reuse`` finds the kept cluster again
without restarting anything."""

from __future__ import annotations

import json

import pytest

from kopsrun import kops

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
pytest_plugins = ["pytester"]

INNER = '''
import time
import uuid

from confluent_kafka import Consumer, Producer


def test_round_trip(kafka_cluster):
    topic = kafka_cluster.topic(partitions=2)
    producer = Producer(kafka_cluster.client_config)
    for i in range(20):
        producer.produce(topic, f"m{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({**kafka_cluster.client_config, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got, deadline = set(), time.monotonic() + 60
    while len(got) < 20 and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and not m.error():
            got.add(m.value())
    consumer.close()
    assert len(got) == 20


def test_kill_and_start(kafka_cluster):
    kafka_cluster.kill("kafka1")
    assert kafka_cluster.status()["state"] != "healthy"
    kafka_cluster.start("kafka1")
    assert kafka_cluster.status()["state"] == "healthy"


def test_fails_on_purpose(kafka_cluster):
    assert kafka_cluster.bootstrap_servers.startswith("127.0.0.1:")
    assert False, "this inner test fails so that its artifacts are kept"
'''


def _started(docker_client, name: str) -> dict[str, str]:
    return {c.labels["io.kops.node"]: c.attrs["State"]["StartedAt"]
            for c in docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}"})
            if "io.kops.node" in c.labels}


def test_kafka_cluster_fixture(pytester, docker_client, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path / "state"))
    pytester.makepyfile(test_inner=INNER)
    artifacts = tmp_path / "artifacts"
    result = pytester.runpytest_subprocess("--kops-preset", "kraft-single", "--kops-artifacts", str(artifacts),
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*kops: pytest-kraft-single-* ready in * s at 127.0.0.1:*"])
    failed = [d for d in artifacts.iterdir() if "test_fails_on_purpose" in d.name]
    assert len(failed) == 1, list(artifacts.iterdir())
    status = json.loads((failed[0] / "status.json").read_text())
    assert status["state"] == "healthy" and status["cluster"].startswith("pytest-kraft-single-")
    log = (failed[0] / "kafka1.log").read_text().splitlines()
    assert len(log) >= 20 and all(" INFO " in ln or " WARN " in ln or ln.startswith((" ", "\t")) or "]" in ln
                                  for ln in log[:20]), log[:20]   # the broker's own log lines
    assert not [d for d in artifacts.iterdir() if "test_round_trip" in d.name], "a passing test left artifacts"
    # the session's cluster is gone after the session
    assert not docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={status['cluster']}"})


def test_reuse_keeps_the_cluster_and_restarts_nothing(pytester, docker_client, tmp_path, monkeypatch):
    import uuid

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path / "state"))
    name = f"kops-suite-reuse-{uuid.uuid4().hex[:6]}"   # never a user's own pytest-<preset> cluster
    pytester.makepyfile(test_inner="def test_it(kafka_cluster):\n    assert kafka_cluster.topic()\n")
    try:
        first = pytester.runpytest_subprocess("--kops-reuse", "--kops-name", name, "-p", "no:cacheprovider")
        first.assert_outcomes(passed=1)
        before = _started(docker_client, name)
        assert before and set(before) == {"kafka1"}, before
        second = pytester.runpytest_subprocess("--kops-reuse", "--kops-name", name, "-p", "no:cacheprovider")
        second.assert_outcomes(passed=1)
        assert _started(docker_client, name) == before, "--kops-reuse restarted the cluster"
        # the topics each session made are gone: a reused cluster does not pile them up
        listed = kops("topic", "list", "--output", "json", "--name", name)
        assert listed.returncode == 0, listed.stderr
        assert not [t for t in json.loads(listed.stdout) if str(t.get("name", t)).startswith("test-")], listed.stdout
    finally:
        kops("down", "--purge", "--name", name, timeout=None)


def test_a_bad_name_is_a_usage_error(pytester):
    pytester.makepyfile(test_inner="def test_it(kafka_cluster):\n    pass\n")
    result = pytester.runpytest_subprocess("--kops-name", "../Bad Name", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--kops-name '../Bad Name' is not a cluster name*"])
