"""Unit tests for kops.dist: checksum parsing, version checks, distribution inspection.

Pure and fast: no network, no Docker, no Java. The kops cache is redirected to a tmp dir.
"""

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

from kops.artifacts import dist
from kops.core import paths
from kops.core.errors import EXIT_FAILURE, EXIT_INPUT, DistError, InputError


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("KOPS_CACHE_DIR", str(cache))
    monkeypatch.delenv("KOPS_APACHE_URL", raising=False)
    monkeypatch.delenv("KOPS_MAVEN_REPO", raising=False)
    return cache


def _digest(data: bytes = b"kafka tarball bytes\n") -> str:
    return hashlib.sha512(data).hexdigest()


def apache_sha512(name: str, hexdigest: str, group: int = 8, per_line: int = 8) -> str:
    """Apache's ``gpg --print-md SHA512`` style: uppercase groups, wrapped and indented."""
    up = hexdigest.upper()
    groups = [up[i:i + group] for i in range(0, len(up), group)]
    prefix = f"{name}: "
    lines = [" ".join(groups[i:i + per_line]) for i in range(0, len(groups), per_line)]
    indent = " " * len(prefix)
    return prefix + ("\n" + indent).join(lines) + "\n"


# -- parse_sha512 ----------------------------------------------------------------------

def test_parse_sha512_sha512sum_format():
    h = _digest()
    assert dist.parse_sha512(f"{h}  kafka_2.13-3.9.2.tgz\n") == h


def test_parse_sha512_sha512sum_uppercase_bare_hash():
    h = _digest(b"x")
    assert dist.parse_sha512(h.upper() + "\n") == h


@pytest.mark.parametrize("group,per_line", [(8, 8), (4, 8), (4, 16), (8, 4)])
def test_parse_sha512_apache_grouped_uppercase(group, per_line):
    h = _digest(b"the real kafka_2.13-3.9.0.tgz")
    text = apache_sha512("kafka_2.13-3.9.0.tgz", h, group=group, per_line=per_line)
    # really the Apache shape: uppercase, grouped, several lines, name prefix
    assert text.startswith("kafka_2.13-3.9.0.tgz: ")
    assert text.count("\n") >= 2
    assert h.upper()[:group] + " " + h.upper()[group:2 * group] in text
    assert dist.parse_sha512(text) == h


def test_parse_sha512_apache_with_crlf():
    h = _digest(b"windows")
    text = apache_sha512("kafka_2.13-3.9.0.tgz", h).replace("\n", "\r\n")
    assert dist.parse_sha512(text) == h


@pytest.mark.parametrize("text", [
    "",
    "not a checksum at all",
    "<html><body>404 Not Found</body></html>",
    "kafka_2.13-3.9.0.tgz: 5A3C 0E6F",  # truncated
    "kafka_2.13-3.9.0.tgz: " + "G" * 128,  # not hex
    hashlib.sha256(b"x").hexdigest() + "  kafka_2.13-3.9.0.tgz",  # wrong algorithm
    _digest() + "ab  kafka_2.13-3.9.0.tgz",  # too long
])
def test_parse_sha512_rejects_garbage(text):
    with pytest.raises(DistError) as ei:
        dist.parse_sha512(text)
    assert ei.value.exit_code == EXIT_FAILURE
    assert "SHA-512" in ei.value.message


# -- check_version ---------------------------------------------------------------------

@pytest.mark.parametrize("v", ["3.9.2", "4.4.0", "10.0.11"])
def test_check_version_accepts(v):
    assert dist.check_version(v) == v


@pytest.mark.parametrize("v", ["3.9", "abc", "", "3.9.2.1", "v3.9.2", "3.9.2 ", "latest", "3.9.x"])
def test_check_version_rejects(v):
    with pytest.raises(InputError) as ei:
        dist.check_version(v)
    assert ei.value.exit_code == EXIT_INPUT == 2
    assert repr(v) in ei.value.message
    assert ei.value.hint


def test_check_version_none():
    with pytest.raises(InputError):
        dist.check_version(None)


# -- inspect_dir -----------------------------------------------------------------------

def test_inspect_dir_without_libs(tmp_path):
    d = tmp_path / "notkafka"
    d.mkdir()
    (d / "config").mkdir()
    with pytest.raises(DistError) as ei:
        dist.inspect_dir(d)
    assert "no libs/" in ei.value.message
    assert ei.value.exit_code == 1


def test_inspect_dir_libs_without_kafka_jar(tmp_path):
    libs = tmp_path / "d" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka-clients-3.9.2.jar").write_bytes(b"PK")
    (libs / "kafka_2.13-3.9.2-sources.jar").write_bytes(b"PK")
    (libs / "kafka_2.12-3.9.2.jar").write_bytes(b"PK")
    with pytest.raises(DistError) as ei:
        dist.inspect_dir(tmp_path / "d")
    assert "kafka_2.13-X.Y.Z.jar" in ei.value.message


def test_inspect_dir_with_kafka_jar(tmp_path):
    libs = tmp_path / "kafka_2.13-3.9.2" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-3.9.2.jar").write_bytes(b"PK\x03\x04")
    (libs / "kafka-clients-3.9.2.jar").write_bytes(b"PK\x03\x04")
    (libs / "kafka_2.13-3.9.2-test.jar").write_bytes(b"PK\x03\x04")
    assert dist.inspect_dir(tmp_path / "kafka_2.13-3.9.2") == "3.9.2"


def test_inspect_dir_is_a_file(tmp_path):
    f = tmp_path / "kafka_2.13-3.9.2.tgz"
    f.write_bytes(b"\x1f\x8b")
    with pytest.raises(DistError):
        dist.inspect_dir(f)


# -- _version_from_name ----------------------------------------------------------------

@pytest.mark.parametrize("name,version", [
    ("kafka_2.13-3.9.2.tgz", "3.9.2"),
    ("kafka_2.13-4.4.0.tgz", "4.4.0"),
    ("kafka_2.12-3.7.1.tgz", "3.7.1"),
    ("kafka_2.13-3.10.12", "3.10.12"),
    ("/some/where/kafka_2.13-3.9.2.tar.gz", "3.9.2"),
])
def test_version_from_name(name, version):
    assert dist._version_from_name(name) == version


@pytest.mark.parametrize("name", ["kafka.tgz", "kafka-3.9.2.tgz", "confluent-7.6.0.tgz", ""])
def test_version_from_name_unknown(name):
    with pytest.raises(InputError) as ei:
        dist._version_from_name(name)
    assert ei.value.exit_code == 2
    assert "--from PATH" in ei.value.hint


# -- cache plumbing (KOPS_CACHE_DIR) ---------------------------------------------------

def test_cache_is_redirected(_tmp_cache):
    assert paths.cache_dir() == _tmp_cache
    assert dist.dist_root() == _tmp_cache / "dist"
    assert dist.dist_root().is_dir()
    assert dist.cached("3.9.2") is None


def test_cached_needs_marker(_tmp_cache):
    target = dist.dist_root() / "kafka_2.13-3.9.2"
    (target / "libs").mkdir(parents=True)
    (target / "libs" / "kafka_2.13-3.9.2.jar").write_bytes(b"PK")
    assert dist.cached("3.9.2") is None  # half-written: not a distribution
    (target / dist.MARKER).write_text(json.dumps({"version": "3.9.2", "source": "local:/x"}))
    hit = dist.cached("3.9.2")
    assert hit is not None
    assert hit.path == target and hit.version == "3.9.2" and hit.source == "local:/x"
    assert hit.major == 3
    assert not hit.has_zookeeper
    (target / "libs" / "zookeeper-3.8.4.jar").write_bytes(b"PK")
    assert hit.has_zookeeper


def test_digest_changes_with_jars(tmp_path):
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-3.9.2.jar").write_bytes(b"12345")
    d = dist.Distribution(tmp_path, "3.9.2", "test")
    first = d.digest()
    assert len(first) == 16 and first == d.digest()
    (libs / "extra-1.0.jar").write_bytes(b"1")
    assert d.digest() != first


def test_fetch_local_missing_path_is_input_error(tmp_path):
    with pytest.raises(InputError) as ei:
        dist.fetch("3.9.2", str(tmp_path / "nope.tgz"))
    assert ei.value.exit_code == 2


def test_fetch_bad_version_is_input_error_before_any_download(_tmp_cache):
    with pytest.raises(InputError):
        dist.fetch("3.9", "apache", apache_url="http://127.0.0.1:9")
    # nothing (not even a temp folder) was left behind
    assert list(dist.dist_root().iterdir()) == []


def test_fetch_local_dir_roundtrip(tmp_path, _tmp_cache):
    src = tmp_path / "src" / "kafka_2.13-3.9.2"
    (src / "libs").mkdir(parents=True)
    (src / "libs" / "kafka_2.13-3.9.2.jar").write_bytes(b"PK")
    logs = []
    d = dist.fetch("auto", str(src), log=logs.append)
    assert d.version == "3.9.2"
    assert d.path == _tmp_cache / "dist" / "kafka_2.13-3.9.2"
    assert d.source == f"local:{src}"
    assert (d.path / "config" / "log4j.properties").is_file()
    assert json.loads((d.path / dist.MARKER).read_text())["source"] == d.source
    assert [p.name for p in dist.dist_root().iterdir()] == ["kafka_2.13-3.9.2"]
    # the tarball round trip keeps the layout and drops the marker
    tgz = dist.tarball(d, tmp_path / "out")
    assert tgz.name == "kafka_2.13-3.9.2.tgz"
    with tarfile.open(tgz) as tar:
        names = tar.getnames()
    assert "kafka_2.13-3.9.2/libs/kafka_2.13-3.9.2.jar" in names
    assert not any(n.endswith(dist.MARKER) for n in names)
    # cached now
    again = dist.fetch("3.9.2", str(src), log=logs.append)
    assert again == d
    assert any("cached" in m for m in logs)


def test_fetch_local_wrong_version_leaves_nothing(tmp_path, _tmp_cache):
    src = tmp_path / "kafka_2.13-3.9.2"
    (src / "libs").mkdir(parents=True)
    (src / "libs" / "kafka_2.13-3.9.2.jar").write_bytes(b"PK")
    with pytest.raises(DistError) as ei:
        dist.fetch("3.9.1", str(src))
    assert "3.9.2" in ei.value.message
    assert list(dist.dist_root().iterdir()) == []
