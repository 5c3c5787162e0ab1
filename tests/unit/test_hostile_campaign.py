"""A property-based campaign (hypothesis) over the surfaces added last round: Connect
plugins, the registry's and per-node overrides, topics, versions, and the options of the
commands that take durations, versions and files. Whatever the input, kops answers with a
spec or with bad input (exit 2) naming the field: never a "kops bug", never a hang. The
number of inputs tried is printed (pytest -s) for the report."""

from __future__ import annotations

import signal
import string

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from kops.cli.main import cli
from kops.core.errors import KopsError
from kops.model import inventory
from kops.model.spec import SpecError

TRIED = {"inventories": 0, "commands": 0}

# text that YAML, paths and shells find interesting
NASTY = st.sampled_from(["..", ".", "../..", "/etc/passwd", "${HOME}", "$(id)", "`id`", "a\nb", "a\x00b", "\x1b[2J",
                         "'", '"', "\\", ":", "::", "a:b:c", "true", "null", "~", "-1", "1e309", "nan", "inf",
                         "３.９.２", "03.9.2", "x" * 300, "", " ", "*", "&a", "!!python/object:os.system"])
WORDS = st.one_of(NASTY, st.text(alphabet=string.printable, max_size=40), st.text(max_size=20))
VALUES = st.one_of(WORDS, st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.booleans(),
                   st.floats(allow_nan=True, allow_infinity=True), st.none())
KEYS = st.one_of(st.sampled_from(["server.1", "group.1", "4lw.commands.whitelist", "listeners", "log.dirs",
                                  "offset.flush.interval.ms", "apicurio.storage.kind", "quarkus.http.port",
                                  "plugin.path", "num.partitions", "log.retention.ms", "ssl.keystore.location"]),
                 WORDS)


def yaml_quote(v) -> str:
    if isinstance(v, str):
        return '"' + v.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v != v:
        return ".nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


def mapping(d: dict) -> str:
    return "{" + ", ".join(f"{yaml_quote(k)}: {yaml_quote(v)}" for k, v in d.items()) + "}"


@st.composite
def inventories(draw) -> str:
    parts = [f"name: {yaml_quote(draw(st.one_of(st.just('camp'), WORDS)))}",
             f"kafka: {{version: {yaml_quote(draw(st.one_of(st.sampled_from(['3.9.2', '4.4.0']), WORDS)))}}}"]
    if draw(st.booleans()):
        plugins = draw(st.lists(st.one_of(WORDS, st.builds(lambda a, b, c: f"{a}:{b}:{c}", WORDS, WORDS, WORDS),
                                          st.builds(lambda a: f"./{a}.jar", WORDS)), max_size=3))
        parts.append(f"connect: {{nodes: 1, plugins: [{', '.join(map(yaml_quote, plugins))}]}}")
    if draw(st.booleans()):
        parts.append(f"schema_registry: {{config: {mapping(draw(st.dictionaries(KEYS, VALUES, max_size=3)))}}}")
    nodes = draw(st.dictionaries(st.one_of(st.sampled_from(["zoo1", "kafka1", "connect1", "registry1",
                                                            "controller1"]), WORDS),
                                 st.dictionaries(KEYS, VALUES, max_size=3), max_size=3))
    if nodes:
        parts.append("nodes: {" + ", ".join(f"{yaml_quote(n)}: {{config: {mapping(c)}}}" for n, c in nodes.items())
                     + "}")
    topics = draw(st.dictionaries(st.one_of(st.sampled_from(["__consumer_offsets", "camp-connect-offsets",
                                                             "kafkasql-journal", "orders"]), WORDS),
                                  st.fixed_dictionaries({"partitions": VALUES}), max_size=2))
    if topics:
        parts.append("topics: {" + ", ".join(f"{yaml_quote(t)}: {mapping(c)}" for t, c in topics.items()) + "}")
    if draw(st.booleans()):
        parts.append(f"brokers: {{nodes: {yaml_quote(draw(VALUES))}, external_port: {yaml_quote(draw(VALUES))}}}")
    return "\n".join(parts) + "\n"


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(inventories())
def test_any_inventory_is_a_spec_or_bad_input(text):
    TRIED["inventories"] += 1
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(5)
    try:
        inventory.loads(text, "campaign.yaml")
    except SpecError as exc:
        assert exc.exit_code == 2 and exc.problems
    except KopsError as exc:
        assert exc.exit_code == 2, exc.message
    finally:
        signal.alarm(0)


OPTIONS = [
    ["up", "--timeout", "{}", "--dry-run"], ["check", "--timeout", "{}"], ["status", "--wait", "{}"],
    ["upgrade", "--to", "{}", "--dry-run"], ["upgrade", "--to", "3.9.2", "--timeout", "{}"],
    ["migrate", "--to-kraft", "--timeout", "{}"], ["consume", "t", "--timeout", "{}"],
    ["topic", "list", "--request-timeout", "{}"], ["dist", "fetch", "{}", "--from", "/nonexistent"],
    ["init", "-o", "{}", "--preset", "dev"], ["connect", "create", "{}"], ["client-config", "{}", "-o", "/nonexistent/x"],
    ["render", "-i", "{}", "-o", "/tmp/kops-campaign-render"],
]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@given(st.sampled_from(OPTIONS), st.one_of(NASTY, st.text(alphabet=string.printable, max_size=30),
                                           st.floats(allow_nan=True, allow_infinity=True).map(str)))
def test_any_option_value_is_bad_input_not_a_bug(tmp_path_factory, template, value):
    TRIED["commands"] += 1
    if "\x00" in value:
        value = value.replace("\x00", "")
    args = [a.format(value) if "{}" in a else a for a in template]
    cwd = tmp_path_factory.mktemp("campaign")
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        with CliRunner().isolated_filesystem(temp_dir=cwd):
            res = CliRunner().invoke(cli, [*args, "--help"] if not args else args, env={"KOPS_STATE_DIR": str(cwd),
                                                                                    "DOCKER_HOST": "unix:///nonexistent"})
    finally:
        signal.alarm(0)
    out = (res.output or "") + (str(res.exception) if res.exception and not isinstance(res.exception, SystemExit)
                                else "")
    assert "kops bug" not in out and not isinstance(res.exception, (RecursionError, MemoryError, Hang)), (args, out)
    assert res.exit_code in (0, 1, 2, 3, 4), (args, res.exit_code, out)
    if "--timeout" in template or "--wait" in template or "--request-timeout" in template:
        if not _seconds_ok(value):
            assert res.exit_code == 2 and "seconds" in out, (args, res.exit_code, out)


def _seconds_ok(value: str) -> bool:
    import math

    try:
        v = float(value)
    except ValueError:
        return False
    return math.isfinite(v) and 0 <= v <= 86400


def test_zz_report_how_many_inputs_were_tried(capsys):
    with capsys.disabled():
        print(f"\nhostile campaign: {TRIED['inventories']} inventories, {TRIED['commands']} command lines tried")
    assert sum(TRIED.values()) == 0 or TRIED["inventories"] >= 100
