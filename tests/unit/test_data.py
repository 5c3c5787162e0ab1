"""The pure parts of kops.data: the consume format template, where a consumer starts,
offset-reset planning, the inventory topics' diff, client settings files; and the
inventory's `topics:` validation (hostile values exit 2 naming the field)."""

from __future__ import annotations

import json
import stat

import pytest

from kops.kafka import data, messages
from kops.model import inventory
from kops.core.errors import InputError
from kops.model.spec import SpecError, TopicSpec

REC = messages.Record("orders", 2, 41, 1700000000123, b"k1", b"hello", (("src", b"cli"), ("n", None)))


# -- the format template ------------------------------------------------------------------------

@pytest.mark.parametrize("template, expected", [
    ("%v\\n", b"hello\n"),
    ("%s", b"hello"),
    ("%t/%p@%o", b"orders/2@41"),
    ("%k=%v\\t%T", b"k1=hello\t1700000000123"),
    ("[%h]", b"[src=cli,n=]"),
    ("%K %S", b"2 5"),
    ("100%% %v", b"100% hello"),
    ("a\\\\b\\r\\0", b"a\\b\r\0"),
    ("plain", b"plain"),
    ("", b""),
])
def test_format_renders(template, expected):
    assert messages.render(messages.parse_format(template), REC) == expected


def test_format_null_key_and_value_and_no_timestamp():
    rec = messages.Record("t", 0, 0, None, None, None)
    assert messages.render(messages.parse_format("<%k><%v> %K %S %T [%h]"), rec) == b"<><> -1 -1 -1 []"


def test_format_is_parsed_into_literals_and_fields():
    assert messages.parse_format("%k=%v\\n") == [("key",), "=", ("value",), "\n"]


def test_format_keeps_binary_values_as_they_are():
    rec = messages.Record("t", 0, 0, None, b"\xff\x00", "é".encode())
    assert messages.render(messages.parse_format("%k|%v"), rec) == b"\xff\x00|" + "é".encode()


@pytest.mark.parametrize("template, words", [
    ("%x", "%x is not a field"),
    ("%v %", "ends with a lone '%'"),
    ("\\q", "\\q is not an escape"),
    ("abc\\", "ends with a lone '\\\\'"),
])
def test_format_refuses_unknown_fields_and_escapes(template, words):
    with pytest.raises(InputError) as exc:
        messages.parse_format(template)
    assert words in exc.value.message
    assert exc.value.exit_code == 2


def test_record_json_is_one_object():
    d = REC.as_dict()
    assert json.loads(json.dumps(d)) == {"topic": "orders", "partition": 2, "offset": 41,
                                         "timestamp": 1700000000123, "key": "k1", "value": "hello",
                                         "headers": [["src", "cli"], ["n", None]]}


# -- where a consumer starts --------------------------------------------------------------------------

@pytest.mark.parametrize("text, start", [
    ("beginning", messages.Start("beginning")), ("earliest", messages.Start("beginning")),
    ("end", messages.Start("end")), ("latest", messages.Start("end")),
    ("42", messages.Start("offset", 42)), ("-10", messages.Start("relative", 10)),
    ("@1700000000000", messages.Start("timestamp", 1700000000000)),
    ("@2023-11-14T22:13:20Z", messages.Start("timestamp", 1700000000000)),
    ("@2023-11-14T22:13:20", messages.Start("timestamp", 1700000000000)),   # UTC unless it says otherwise
    ("stored", messages.Start("stored")),
])
def test_parse_start(text, start):
    assert messages.parse_start(text) == start


@pytest.mark.parametrize("text", ["", "soon", "@yesterday", "1.5", "--3", "$(id)"])
def test_parse_start_refuses(text):
    with pytest.raises(InputError):
        messages.parse_start(text)


@pytest.mark.parametrize("start, low, high, at, expected", [
    (messages.Start("beginning"), 5, 20, None, 5),
    (messages.Start("end"), 5, 20, None, 20),
    (messages.Start("offset", 12), 5, 20, None, 12),
    (messages.Start("offset", 2), 5, 20, None, 5),        # below the low watermark: the first kept
    (messages.Start("offset", 99), 5, 20, None, 20),      # past the end: the end
    (messages.Start("relative", 10), 5, 20, None, 10),
    (messages.Start("relative", 100), 5, 20, None, 5),
    (messages.Start("timestamp", 1), 5, 20, 8, 8),
    (messages.Start("timestamp", 1), 5, 20, -1, 20),      # nothing at or after it: the end
])
def test_start_offset(start, low, high, at, expected):
    assert messages.start_offset(start, low, high, at) == expected


# -- offset reset planning ----------------------------------------------------------------------------

PARTS = [data.PartitionOffsets("b", 0, 7, 0, 10, 4),
         data.PartitionOffsets("a", 1, None, 3, 9, -1),
         data.PartitionOffsets("a", 0, 2, 2, 2, None)]


@pytest.mark.parametrize("to, value, news", [
    ("earliest", None, [2, 3, 0]),
    ("latest", None, [2, 9, 10]),
    ("offset", 5, [2, 5, 5]),
    ("offset", 0, [2, 3, 0]),
    ("offset", 100, [2, 9, 10]),
    ("datetime", 123, [2, 9, 4]),
])
def test_plan_reset(to, value, news):
    rows = data.plan_reset(PARTS, to, value)
    assert [(r["topic"], r["partition"]) for r in rows] == [("a", 0), ("a", 1), ("b", 0)]
    assert [r["new"] for r in rows] == news
    assert [r["current"] for r in rows] == [2, None, 7]
    assert [r["lag_after"] for r in rows] == [2 - news[0], 9 - news[1], 10 - news[2]]


# -- the inventory topics' diff -----------------------------------------------------------------------

def _state(partitions, rf=1, **config):
    return data.TopicState(partitions, rf, {"retention.ms": "604800000", "cleanup.policy": "delete", **config})


def test_diff_new_topics_are_created():
    plan = data.diff_topics({"a": TopicSpec(partitions=3, config={"retention.ms": 1000})}, {})
    (c,) = plan.pending
    assert (c.action, c.partitions, c.config) == ("create", (None, 3), {"retention.ms": (None, "1000")})
    assert plan.problems == [] and plan.observed


def test_diff_unreadable_cluster_takes_every_topic_as_new():
    plan = data.diff_topics({"a": TopicSpec()}, None)
    assert [c.action for c in plan.changes] == ["create"] and not plan.observed
    assert "compared once it is ready" in plan.lines()[-1]


def test_diff_equal_is_unchanged():
    wanted = {"a": TopicSpec(partitions=3, replication_factor=1,
                             config={"retention.ms": 604800000, "cleanup.policy": "delete"})}
    plan = data.diff_topics(wanted, {"a": _state(3)})
    assert plan.pending == [] and plan.problems == [] and plan.lines() == []


def test_diff_more_partitions_and_configs_alter():
    wanted = {"a": TopicSpec(partitions=6, config={"cleanup.policy": "compact", "unclean.leader.election.enable": True})}
    plan = data.diff_topics(wanted, {"a": _state(3)})
    (c,) = plan.pending
    assert c.action == "alter" and c.partitions == (3, 6)
    assert c.config == {"cleanup.policy": ("delete", "compact"), "unclean.leader.election.enable": (None, "true")}
    assert "partitions 3 -> 6" in c.describe() and "cleanup.policy delete -> compact" in c.describe()


def test_diff_keys_absent_from_the_inventory_are_left_alone():
    plan = data.diff_topics({"a": TopicSpec(partitions=3)}, {"a": _state(3, **{"segment.ms": "1"})})
    assert plan.pending == []


def test_diff_shrink_and_replication_change_are_problems_naming_the_topic():
    wanted = {"a": TopicSpec(partitions=2), "b": TopicSpec(partitions=1, replication_factor=3), "c": TopicSpec()}
    plan = data.diff_topics(wanted, {"a": _state(3), "b": _state(1, rf=1)})
    assert len(plan.problems) == 2
    assert plan.problems[0].startswith("topics.a.partitions: 2 is fewer than the 3")
    assert plan.problems[1].startswith("topics.b.replication_factor: 3 differs from the topic's 1")
    # never shrinks, even in the change it lists
    assert [c.partitions for c in plan.changes if c.topic == "a"] == [(3, 3)]


# -- settings and client files ------------------------------------------------------------------------

def test_parse_settings():
    assert data.parse_settings(["security.protocol=SSL", "a.b=x=y"]) == {"security.protocol": "SSL", "a.b": "x=y"}
    for bad in ["noequals", "=x", "Bad Key=1", "$(id)=1"]:
        with pytest.raises(InputError):
            data.parse_settings([bad])


def test_command_config_from_java_properties(tmp_path):
    f = tmp_path / "client.properties"
    f.write_text("# comment\nbootstrap.servers=h\\:1\nsecurity.protocol = SASL_SSL\nssl.truststore.type=PEM\n"
                 "ssl.truststore.location=/x/ca.pem\nsasl.mechanism=SCRAM-SHA-512\n"
                 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                 'username="app" password="s3cret-pass";\n')
    assert data.read_command_config(str(f)) == {
        "bootstrap.servers": "h:1", "security.protocol": "SASL_SSL", "ssl.ca.location": "/x/ca.pem",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "app", "sasl.password": "s3cret-pass"}


def test_command_config_refuses_a_jks_truststore(tmp_path):
    f = tmp_path / "c.properties"
    f.write_text("ssl.truststore.location=/x/trust.jks\n")
    with pytest.raises(InputError, match="librdkafka reads PEM"):
        data.read_command_config(str(f))


def test_client_files_round_trip_through_the_reader(tmp_path):
    settings = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "kops-admin",
                "sasl.password": "pw-0123456789", "ssl.endpoint.identification.algorithm": "https",
                "ssl.ca.location": "/elsewhere/ca.pem"}
    (tmp_path / "src").mkdir()
    ca = tmp_path / "src" / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    files = data.write_client_files(tmp_path / "out", "127.0.0.1:9092", {**settings, "ssl.ca.location": str(ca)})
    assert set(files) == {"ca.pem", "client.properties", "librdkafka.conf", "client.json"}
    for name in ("client.properties", "librdkafka.conf", "client.json"):
        assert stat.S_IMODE(files[name].stat().st_mode) == 0o600, name
    back = data.read_command_config(str(files["client.properties"]))
    assert back == {"bootstrap.servers": "127.0.0.1:9092", **settings, "ssl.ca.location": str(files["ca.pem"])}
    assert data.read_command_config(str(files["librdkafka.conf"])) == back
    assert json.loads(files["client.json"].read_text()) == back


def test_client_files_of_a_plaintext_cluster_hold_no_secret(tmp_path):
    files = data.write_client_files(tmp_path, "127.0.0.1:9092", {})
    assert files["client.properties"].read_text() == "bootstrap.servers=127.0.0.1:9092\n"
    assert stat.S_IMODE(files["librdkafka.conf"].stat().st_mode) == 0o644


def test_properties_escapes():
    assert data._prop(" a\\b\nc\u00e9") == "\\ a\\\\b\\nc\\u00e9"


def test_split_line():
    assert messages.split_line("k:v:w", ":") == (b"k", b"v:w")
    assert messages.split_line("novalue", ":") == (None, b"novalue")
    assert messages.split_line("k:v", None) == (None, b"k:v")


def test_parse_configs():
    assert data.parse_configs(["retention.ms=1000", "cleanup.policy=compact"]) == {
        "retention.ms": "1000", "cleanup.policy": "compact"}
    for bad in ["noequals", "bad key=1", "$(id)=1", "a=b\nc"]:
        with pytest.raises(InputError):
            data.parse_configs([bad])


@pytest.mark.parametrize("name", ["", ".", "..", "a b", "a\nb", "a'b", 'a"b', "$(id)", "../x", "a/b", "x" * 250,
                                  "é"])
def test_check_topic_refuses(name):
    with pytest.raises(InputError) as exc:
        data.check_topic(name)
    assert exc.value.exit_code == 2


# -- the inventory's topics ---------------------------------------------------------------------------

BASE = "name: t11\nkafka: {version: 3.9.2}\nbrokers: {nodes: 1}\n"


def _problems(topics_yaml: str) -> list[str]:
    with pytest.raises(SpecError) as exc:
        inventory.loads(BASE + "topics:\n" + topics_yaml)
    return exc.value.problems


def test_inventory_topics_load():
    spec = inventory.loads(BASE + "topics:\n  orders: {partitions: 6, config: {retention.ms: 1000}}\n  e.v_1-x: {}\n")
    assert spec.topics["orders"].partitions == 6 and spec.topics["orders"].config == {"retention.ms": 1000}
    assert spec.topics["e.v_1-x"].partitions == 1 and spec.topics["e.v_1-x"].replication_factor is None


@pytest.mark.parametrize("key", ['"a\\nb"', '"a\'b"', "'a\"b'", '"$(touch /tmp/x)"', '"../etc"', '"."', '".."',
                                 '"a b"', "x" * 250, '""', '"é"', '"a;rm -rf"'])
def test_inventory_refuses_hostile_topic_names(key):
    (p,) = _problems(f"  {key}: {{}}\n")
    assert p.startswith("topics.") and "is not a topic name" in p
    assert "\n" not in p


@pytest.mark.parametrize("body, field", [
    ("{partitions: 100000000}", "topics.t.partitions"),
    ("{partitions: 0}", "topics.t.partitions"),
    ("{partitions: -3}", "topics.t.partitions"),
    ("{partitions: 1.5}", "topics.t.partitions"),
    ("{partitions: '$(id)'}", "topics.t.partitions"),
    ("{replication_factor: 2}", "topics.t.replication_factor: 2 is above the number of brokers (1)"),
    ("{replication_factor: 0}", "topics.t.replication_factor"),
    ("{config: {'bad key': 1}}", "topics.t.config"),
    ("{config: {retention.ms: \"1\\n2\"}}", "topics.t.config.retention.ms"),
    ("{config: {'$(id)': 1}}", "topics.t.config"),
    ("{partition: 3}", "topics.t.partition: unknown key (did you mean topics.t.partitions?)"),
])
def test_inventory_refuses_hostile_topic_values(body, field):
    problems = _problems(f"  t: {body}\n")
    assert any(p.startswith(field) for p in problems), problems


def test_inventory_refuses_colliding_topic_names():
    (p,) = _problems("  a.b: {}\n  a_b: {}\n")
    assert p.startswith("topics.a_b: collides with topic 'a.b'")
