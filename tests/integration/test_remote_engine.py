"""The Docker provider against an engine reached over TCP, and the fast profile on it.

kops must assume no local socket or path: everything goes through the Docker API at
``DOCKER_HOST``. The engine here is the machine's own, reached through a TCP listener on
loopback that this test opens (a byte pipe to the engine's socket), so every API call of
kops crosses a real TCP connection; the test counts them. The cluster is the ``dev``
preset (the fast profile: one combined KRaft node, the JVM's class data sharing archive).
"""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

import kopsrun

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ENGINE_SOCKET = "/var/run/docker.sock"


class TcpToEngine:
    """127.0.0.1:<free port> -> the engine's unix socket, one thread pair per connection."""

    def __init__(self, target: str = ENGINE_SOCKET):
        self.target = target
        self.connections = 0
        self.bytes = 0
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(64)
        self.port = self._srv.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._srv.close()


@pytest.fixture
def remote(tmp_path, own_clusters):
    proxy = TcpToEngine()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"tcp://127.0.0.1:{proxy.port}", KOPS_STATE_DIR=str(tmp_path / "state"),
               NO_COLOR="1")
    name = own_clusters(f"t10-remote-{os.getpid() % 10000}")
    yield proxy, env, name
    kops(env, "down", "--purge", "--name", name, timeout=300)
    proxy.close()


def kops(env, *args, timeout=420):
    return kopsrun.kops(*args, env=env, timeout=timeout)


def test_dev_cluster_on_an_engine_reached_over_tcp(remote, docker_client):
    proxy, env, name = remote
    up = kops(env, "up", "--preset", "dev", "--any-port", "--name", name, "--output", "json")
    assert up.returncode == 0, up.stderr
    assert proxy.connections > 0 and proxy.bytes > 0

    st = kops(env, "status", "--name", name, "--output", "json")
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    assert data["state"] == "healthy"
    # the fast profile ran, with the image's class data sharing archive mapped
    (container,) = docker_client.containers.list(filters={"label": f"io.kops.cluster={name}"})
    argv = container.attrs["Config"]["Cmd"]
    assert "-XX:TieredStopAtLevel=1" in argv and "-XX:SharedArchiveFile=/opt/kafka/cds/kafka.jsa" in argv
    pid = container.exec_run(["sh", "-c", "pgrep -f kafka.Kafka | head -n 1"]).output.decode().strip()
    maps = container.exec_run(["sh", "-c", f"grep -c kafka.jsa /proc/{pid}/maps"]).output.decode().strip()
    assert int(maps or 0) > 0, "the broker JVM did not map the class data sharing archive"
    props = container.exec_run(["cat", "/etc/kafka/server.properties"]).output.decode()
    assert "offsets.topic.num.partitions=1" in props

    before = proxy.connections
    chk = kops(env, "check", "--name", name)
    assert chk.returncode == 0, chk.stderr
    assert proxy.connections > before

    down = kops(env, "down", "--purge", "--name", name)
    assert down.returncode == 0, down.stderr
    assert not docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}"})


def test_no_engine_at_docker_host_is_a_clear_error(tmp_path):
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DOCKER_HOST": f"tcp://127.0.0.1:{port}", "KOPS_STATE_DIR": str(tmp_path)}
    p = kops(env, "status", "--name", "t10-nothing", timeout=60)
    assert p.returncode != 0
    assert f"tcp://127.0.0.1:{port}" in p.stderr and "Traceback" not in p.stderr
