"""The debug bundle's pure parts: redaction, the leak guard (fail closed), clock offsets,
and bad -o values."""

import tarfile

import pytest
from click.testing import CliRunner

from kops.cli.main import cli
from kops.core.redact import redact
from kops.ops import debug


def test_redact_passwords_keys_and_known_values():
    text = ('sasl.jaas.config=x required username="u" password="pw-123456789";\n'
            'ssl.key.password=abcdefgh12\n{"password": "json-secret-1"}\n'
            "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n"
            "token here: known-value-42 and again known-value-42\n")
    out = redact(text, ["known-value-42", "short"])
    for secret in ("pw-123456789", "abcdefgh12", "json-secret-1", "MIGHAgEAMBMGByqGSM49", "known-value-42"):
        assert secret not in out
    assert out.count("****") >= 6 and 'username="u"' in out


def test_archive_redacts_on_the_way_in_and_guards_what_slips(tmp_path):
    ar = debug._Archive("b", ["a-kept-secret-value"])
    ar.text("x.txt", "line with a-kept-secret-value")
    assert ar.leaks() == []
    ar.members["b/raw.bin"] = b"a-kept-secret-value"      # something written around the redaction
    assert ar.leaks() == ["b/raw.bin"]
    ar.members.pop("b/raw.bin")
    size = ar.write(tmp_path / "b.tar.gz")
    assert size > 0 and oct((tmp_path / "b.tar.gz").stat().st_mode & 0o777) == "0o600"
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert tar.extractfile("b/x.txt").read() == b"line with ****"


def test_clock_offset_words():
    facts = "== clock (UTC epoch seconds)\n1000.5\n== system\n"
    assert debug._clock_words(facts, 1000.0) == \
        "== clock offset from the control machine: +0.500 s (within the exec's round trip)\n"
    assert debug._clock_words("no clock", 1.0) == ""


@pytest.mark.parametrize("out, words", [("bundle.zip", "the bundle is a .tar.gz"),
                                        ("/nonexistent-dir/b.tar.gz", "no folder")])
def test_bad_output_file_is_exit_2(out, words, tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    r = CliRunner().invoke(cli, ["debug", "bundle", "--name", "nobody", "-o", out])
    assert r.exit_code == 2 and words in r.output, r.output
