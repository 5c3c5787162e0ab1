"""`kops dist fetch` end to end against a local Apache-layout mirror on 127.0.0.1.

A real official-layout tarball is packed from the cached (Maven-assembled) Kafka 3.9.2,
served by a throwaway http.server, and fetched by the real CLI in a subprocess with
KOPS_CACHE_DIR pointing at a tmp dir (the user's cache is only read, never written,
unless 3.9.2 is missing from it).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

import kopsrun

import kops.artifacts.dist

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

VERSION = "3.9.2"
NAME = f"kafka_2.13-{VERSION}"


# -- helpers ---------------------------------------------------------------------------

def apache_sha512(path: Path) -> str:
    """The ``.sha512`` the Apache archive publishes: ``name: AB12CD34 EF56...`` wrapped."""
    up = hashlib.sha512(path.read_bytes()).hexdigest().upper()
    groups = [up[i:i + 8] for i in range(0, 128, 8)]
    prefix = f"{path.name}: "
    lines = [" ".join(groups[i:i + 6]) for i in range(0, len(groups), 6)]
    return prefix + ("\n" + " " * len(prefix)).join(lines) + "\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def flat(text: str) -> str:
    """Rich wraps stderr at the terminal width: compare with whitespace collapsed."""
    return " ".join(text.split())


def run_kops(args: list[str], cache: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("KOPS_APACHE_URL", "KOPS_MAVEN_REPO", "KOPS_CACHE_DIR")}
    env.update(KOPS_CACHE_DIR=str(cache), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", COLUMNS="300")
    return kopsrun.kops(*args, env=env, timeout=timeout, cwd="/tmp")


def leftovers(cache: Path) -> list[str]:
    root = cache / "dist"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


# -- fixtures --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    """kafka_2.13-3.9.2.tgz in the official layout, packed from the cached distribution."""
    d = kops.artifacts.dist.cached(VERSION) or kops.artifacts.dist.fetch(VERSION, "maven")
    out = tmp_path_factory.mktemp("tgz")
    tgz = kops.artifacts.dist.tarball(d, out)
    assert tgz.name == f"{NAME}.tgz"
    with tarfile.open(tgz) as tar:
        names = set(tar.getnames())
    assert f"{NAME}/libs/{NAME}.jar" in names
    assert f"{NAME}/config/log4j.properties" in names
    assert not any(n.endswith(kops.artifacts.dist.MARKER) for n in names)
    return tgz


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, tarball):
    """http://127.0.0.1:PORT serving ``good/`` (intact) and ``bad/`` (corrupted) mirrors."""
    root = tmp_path_factory.mktemp("mirror")
    good = root / "good" / "kafka" / VERSION
    bad = root / "bad" / "kafka" / VERSION
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    shutil.copy(tarball, good / tarball.name)
    sha = apache_sha512(good / tarball.name)
    (good / f"{tarball.name}.sha512").write_text(sha)
    # same size, a few bytes flipped in the middle; the published checksum is the good one
    data = bytearray(tarball.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 16):
        data[i] ^= 0xFF
    (bad / tarball.name).write_bytes(bytes(data))
    (bad / f"{tarball.name}.sha512").write_text(sha)
    assert hashlib.sha512(data).hexdigest() != kops.artifacts.dist.parse_sha512(sha)

    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "root": root}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def apache_fetch(tmp_path_factory, mirror):
    """The first `kops dist fetch 3.9.2 --apache-url MIRROR/good` into a fresh cache."""
    cache = tmp_path_factory.mktemp("cache-apache")
    base = f"{mirror['url']}/good"
    proc = run_kops(["dist", "fetch", VERSION, "--apache-url", base], cache)
    return cache, base, proc


# -- apache mirror ---------------------------------------------------------------------

def test_served_sha512_is_apache_style(mirror, tarball):
    text = (mirror["root"] / "good" / "kafka" / VERSION / f"{tarball.name}.sha512").read_text()
    assert text.startswith(f"{tarball.name}: ")
    assert len(text.strip().splitlines()) == 3
    assert re.search(r"^[0-9A-F]{8}( [0-9A-F]{8})+$", text.splitlines()[1].strip())
    assert kops.artifacts.dist.parse_sha512(text) == hashlib.sha512(tarball.read_bytes()).hexdigest()


def test_fetch_from_apache_mirror(apache_fetch):
    cache, base, proc = apache_fetch
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == cache / "dist" / NAME
    assert (path / "libs").is_dir()
    assert (path / "libs" / f"{NAME}.jar").is_file()
    assert len(list((path / "libs").glob("*.jar"))) > 50
    assert (path / "config" / "log4j.properties").is_file()
    meta = json.loads((path / kops.artifacts.dist.MARKER).read_text())
    assert meta["version"] == VERSION
    assert meta["source"].startswith("apache:")
    assert meta["source"] == f"apache:{base}"
    err = flat(proc.stderr)
    assert "SHA-512 verified" in err
    assert f"{base}/kafka/{VERSION}/{NAME}.tgz" in err
    # only the finished distribution is left: no temp folder, no tarball
    assert leftovers(cache) == [NAME]
    assert not list(path.rglob("*.tgz"))


def test_second_fetch_is_cached(apache_fetch):
    cache, base, first = apache_fetch
    assert first.returncode == 0, first.stderr
    marker = cache / "dist" / NAME / kops.artifacts.dist.MARKER
    before = marker.read_text()
    proc = run_kops(["dist", "fetch", VERSION, "--apache-url", base], cache)
    assert proc.returncode == 0, proc.stderr
    assert "cached" in proc.stderr
    assert "downloading" not in proc.stderr
    assert proc.stdout.strip() == str(cache / "dist" / NAME)
    assert marker.read_text() == before
    ls = run_kops(["dist", "ls", "--output", "json"], cache)
    assert ls.returncode == 0, ls.stderr
    rows = json.loads(ls.stdout)
    assert [(r["version"], r["source"]) for r in rows] == [(VERSION, f"apache:{base}")]


def test_fetched_distribution_runs(apache_fetch):
    """The jars from the tarball form a runnable Kafka classpath."""
    cache, _, first = apache_fetch
    assert first.returncode == 0, first.stderr
    java = shutil.which("java")
    assert java, "java is needed to run Kafka"
    libs = cache / "dist" / NAME / "libs"
    proc = subprocess.run([java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "random-uuid"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    uuid = proc.stdout.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", uuid), proc.stdout


def test_corrupted_download_is_rejected_and_nothing_cached(tmp_path, mirror):
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--apache-url", f"{mirror['url']}/bad"], cache)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "SHA-512 mismatch" in flat(proc.stderr)
    assert proc.stdout.strip() == ""
    left = leftovers(cache)
    assert NAME not in left
    assert not [n for n in left if n.startswith(".")], left
    assert left == []


def test_missing_version_gives_http_404(tmp_path, mirror):
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", "3.9.1", "--apache-url", f"{mirror['url']}/good"], cache)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    err = flat(proc.stderr)
    assert "HTTP 404" in err
    assert "kafka_2.13-3.9.1.tgz" in err
    assert leftovers(cache) == []


def test_unreachable_mirror_is_a_clean_error(tmp_path):
    # a port nobody listens on (bound then released): connection refused, not a traceback
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--apache-url", f"http://127.0.0.1:{port}"], cache)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "cannot download" in flat(proc.stderr)
    assert "Traceback" not in proc.stderr
    assert leftovers(cache) == []


def test_bad_version_is_exit_2(tmp_path, mirror):
    proc = run_kops(["dist", "fetch", "3.9", "--apache-url", f"{mirror['url']}/good"], tmp_path / "c")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "X.Y.Z" in flat(proc.stderr)


# -- --from PATH -----------------------------------------------------------------------

def test_from_tarball(tmp_path, tarball):
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--from", str(tarball), "--output", "json"], cache)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    path = Path(info["path"])
    assert info["version"] == VERSION
    assert info["source"] == f"local:{tarball}"
    assert info["zookeeper"] is True  # 3.9 still ships ZooKeeper
    assert path == cache / "dist" / NAME
    assert (path / "libs" / f"{NAME}.jar").is_file()
    assert (path / "config" / "log4j.properties").is_file()
    assert leftovers(cache) == [NAME]


def test_from_tarball_version_auto(tmp_path, tarball):
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", "auto", "--from", str(tarball)], cache)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(cache / "dist" / NAME)


def test_from_tarball_with_bad_sibling_sha512(tmp_path, mirror, tarball):
    """A local tarball with a .sha512 next to it is checked too."""
    bad_dir = mirror["root"] / "bad" / "kafka" / VERSION
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--from", str(bad_dir / tarball.name)], cache)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "SHA-512 mismatch" in flat(proc.stderr)
    assert leftovers(cache) == []


def test_from_tarball_with_good_sibling_sha512(tmp_path, mirror, tarball):
    good_dir = mirror["root"] / "good" / "kafka" / VERSION
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--from", str(good_dir / tarball.name)], cache)
    assert proc.returncode == 0, proc.stderr
    assert "SHA-512 verified" in proc.stderr
    assert (cache / "dist" / NAME / "libs" / f"{NAME}.jar").is_file()


def test_from_directory(tmp_path, tarball):
    src = tmp_path / "unpacked"
    src.mkdir()
    with tarfile.open(tarball) as tar:
        tar.extractall(src, filter="data")
    dist_dir = src / NAME
    assert (dist_dir / "libs" / f"{NAME}.jar").is_file()
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--from", str(dist_dir)], cache)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path == cache / "dist" / NAME
    assert sorted(p.name for p in (path / "libs").iterdir()) == \
        sorted(p.name for p in (dist_dir / "libs").iterdir())
    meta = json.loads((path / kops.artifacts.dist.MARKER).read_text())
    assert meta["source"] == f"local:{dist_dir}"
    assert leftovers(cache) == [NAME]
    # the source folder is copied, not moved
    assert (dist_dir / "libs" / f"{NAME}.jar").is_file()


def test_from_directory_that_is_not_kafka(tmp_path):
    src = tmp_path / "empty"
    src.mkdir()
    cache = tmp_path / "cache"
    proc = run_kops(["dist", "fetch", VERSION, "--from", str(src)], cache)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "no libs/ folder" in flat(proc.stderr)
    assert leftovers(cache) == []


def test_from_missing_path_is_exit_2(tmp_path):
    proc = run_kops(["dist", "fetch", VERSION, "--from", str(tmp_path / "nope.tgz")], tmp_path / "c")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "no such file or directory" in flat(proc.stderr)
