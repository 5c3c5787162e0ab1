"""`kops ui` without a cluster: the token and its cookie, CSRF, escaping of hostile data,
secrets kept off the pages, and the pure helpers (Starlette's TestClient, a fake backend)."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from kops.core.errors import InputError, KopsError, NotFoundError
from kops.ui import app as uiapp
from kops.ui.app import Guard, balance_map, create_app, json_of, parse_headers, sparkline, text_of, when

HOSTILE = ["<script>window.__x=1</script>", '"><img src=x onerror=window.__x=2>', "javascript:alert(1)",
           "'><svg onload=alert(3)>", "{{ 7*7 }}"]
SECRET = "s3cr3t-admin-password-xyz"


class FakeBackend:
    """The data the pages are made of, with hostile text everywhere an attacker can put it."""

    def __init__(self):
        self.created: list = []
        self.deleted: list = []
        self.produced: list = []
        self.resets: list = []
        self.settings = {"sasl.password": SECRET}   # what a real backend holds server-side

    def clusters(self):
        return ["dev", "other"]

    def focus(self):
        return ["dev"]

    def status(self, cluster):
        return {"cluster": cluster, "driver": "docker", "mode": "kraft", "kafka_version": "4.4.0",
                "state": "degraded", "problems": [f"kafka1: {HOSTILE[0]}"], "bootstrap_servers": "127.0.0.1:9092",
                "security": "tls,scram-sha-512",
                "kafka": {"brokers": {"1": "127.0.0.1:9092"}, "controller": 1, "under_replicated": [],
                          "offline": [], "brokers_expected": 1},
                "nodes": [{"name": "kafka1", "role": "combined", "id": 1, "state": "running",
                           "addresses": {"host": "127.0.0.1:9092", "network": "kafka1:19092"},
                           "health": "registered", "healthy": True}]}

    def topics(self, cluster, internal=False):
        return [{"topic": "orders", "partitions": 3, "replication_factor": 1, "internal": False}]

    def topic(self, cluster, topic):
        if topic == "missing":
            raise NotFoundError("topic missing does not exist")
        return {"topic": topic, "replication_factor": 2, "messages": 3,
                "partitions": [{"partition": 0, "leader": 1, "replicas": [1, 2], "isr": [1, 2], "low": 0, "high": 1},
                               {"partition": 1, "leader": 2, "replicas": [2, 1], "isr": [2], "low": 0, "high": 2}],
                "configs": {"retention.ms": "1000", HOSTILE[1]: HOSTILE[0]}}

    def create_topic(self, cluster, topic, partitions, rf, configs):
        self.created.append((cluster, topic, partitions, rf, configs))
        return True

    def delete_topic(self, cluster, topic):
        self.deleted.append((cluster, topic))

    def groups(self, cluster):
        return [{"group": HOSTILE[1], "state": "EMPTY", "simple": False}]

    def group(self, cluster, group):
        return {"group": group, "state": "STABLE", "coordinator": 1,
                "members": [{"member_id": HOSTILE[0], "client_id": HOSTILE[2], "host": "/1.2.3.4",
                             "partitions": ["orders-0"]}],
                "offsets": [{"topic": "orders", "partition": 0, "committed": 3, "end": 10, "lag": 7,
                             "member": HOSTILE[2]}], "lag": 7}

    def reset_offsets(self, cluster, group, to, value, topics, execute):
        self.resets.append((group, to, value, topics, execute))
        return {"group": group, "state": "EMPTY", "members": 0, "executed": execute,
                "partitions": [{"topic": "orders", "partition": 0, "current": 3, "new": 0, "lag_after": 10}]}

    def messages(self, cluster, topic, n):
        return [{"partition": 0, "offset": i, "timestamp": 1764787200000, "key": h.encode(),
                 "value": ('{"v": "%s"}' % h.replace('"', '\\"')).encode(),
                 "headers": [(h, h.encode()), ("nil", None)]} for i, h in enumerate(HOSTILE)] + [
            {"partition": 0, "offset": 99, "timestamp": None, "key": None, "value": b"\xff\xfe<b>", "headers": []}]

    def connectors(self, cluster):
        if cluster == "other":
            raise NotFoundError("cluster other has no running Kafka Connect worker")
        return {HOSTILE[0]: {"state": "FAILED", "type": "source", "tasks": ["FAILED"], "worker": HOSTILE[1]}}

    def produce(self, cluster, topic, key, value, headers):
        self.produced.append((topic, key, value, headers))
        return {"partition": 0, "offset": 5}


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def guard():
    return Guard()


@pytest.fixture
def client(backend, guard):
    """A browser that opened the printed URL: the token is a cookie now."""
    c = TestClient(create_app(backend, guard), base_url="http://127.0.0.1")
    r = c.get(f"/?token={guard.token}", follow_redirects=False)
    assert r.status_code == 303
    return c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


# -- the token -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/c/dev/topics", "/c/dev/status", "/static/htmx.min.js", "/nope"])
def test_a_request_without_the_token_is_403(backend, path):
    c = TestClient(create_app(backend, Guard()))
    assert c.get(path).status_code == 403
    assert c.post("/c/dev/topics", data={"topic": "x"}).status_code == 403


def test_a_wrong_token_is_403_and_sets_no_cookie(backend, guard):
    c = TestClient(create_app(backend, guard))
    r = c.get("/?token=" + "x" * 43, follow_redirects=False)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert c.get("/").status_code == 403


def test_the_token_becomes_an_httponly_strict_cookie_and_leaves_the_url(backend, guard):
    c = TestClient(create_app(backend, guard), base_url="http://127.0.0.1")
    r = c.get(f"/c/dev/topics?internal=1&token={guard.token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/c/dev/topics?internal=1"
    cookies = r.headers.get_list("set-cookie")
    tok = [h for h in cookies if re.match(r"kops_ui(_[0-9]+)?=", h)]
    assert tok and guard.token in tok[0]
    for h in cookies:
        assert "HttpOnly" in h and "samesite=strict" in h.lower()
    page = c.get("/c/dev/topics?internal=1")
    assert page.status_code == 200 and guard.token not in page.text
    assert page.headers["referrer-policy"] == "same-origin"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_cookies_are_per_port(guard):
    assert guard.cookie_names(8080) != guard.cookie_names(8081)


# -- CSRF ------------------------------------------------------------------------------------------------

def test_a_post_without_the_csrf_token_is_refused(client, backend):
    r = client.post("/c/dev/topics", data={"topic": "x", "partitions": "1"})
    assert r.status_code == 403 and "CSRF" in r.text
    assert client.post("/c/dev/topics", data={"topic": "x", "csrf": "0" * 64}).status_code == 403
    assert client.post("/c/dev/topics/orders/delete", data={"confirm": "orders"}).status_code == 403
    assert backend.created == [] and backend.deleted == []


def test_a_csrf_token_of_another_session_is_refused(backend, guard, client):
    other = TestClient(create_app(backend, guard), base_url="http://127.0.0.1")
    other.get(f"/?token={guard.token}")
    theirs = csrf_of(other.get("/c/dev/topics").text)
    assert theirs != csrf_of(client.get("/c/dev/topics").text)
    assert client.post("/c/dev/topics", data={"topic": "x", "csrf": theirs}).status_code == 403
    assert backend.created == []


def test_a_post_with_the_csrf_token_goes_through(client, backend):
    token = csrf_of(client.get("/c/dev/topics").text)
    r = client.post("/c/dev/topics", data={"topic": "orders2", "partitions": "3", "replication_factor": "",
                                           "configs": "retention.ms=1000\n", "csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/c/dev/topics/orders2")
    assert backend.created == [("dev", "orders2", 3, None, {"retention.ms": "1000"})]


def test_the_csrf_header_of_htmx_is_accepted(client, backend):
    token = csrf_of(client.get("/c/dev/topics").text)
    assert f'"X-CSRF-Token": "{token}"' in client.get("/").text   # hx-headers on <body>
    r = client.post("/c/dev/topics", data={"topic": "viahx"}, headers={"X-CSRF-Token": token},
                    follow_redirects=False)
    assert r.status_code == 303 and backend.created[-1][1] == "viahx"


def test_a_cross_origin_post_is_refused_even_with_the_token(client, backend):
    token = csrf_of(client.get("/c/dev/topics").text)
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1"):
        r = client.post("/c/dev/topics", data={"topic": "x", "csrf": token}, headers={"Origin": origin})
        assert r.status_code == 403 and backend.created == [], origin
    r = client.post("/c/dev/topics", data={"topic": "same", "csrf": token}, headers={"Origin": "http://127.0.0.1"},
                    follow_redirects=False)
    assert r.status_code == 303 and backend.created[-1][1] == "same"


def test_other_methods_are_refused(client):
    assert client.put("/c/dev/topics").status_code in (403, 405)
    assert client.delete("/c/dev/topics/orders").status_code in (403, 405)


def test_a_topic_is_deleted_only_when_its_name_is_typed(client, backend):
    token = csrf_of(client.get("/c/dev/topics/orders").text)
    r = client.post("/c/dev/topics/orders/delete", data={"csrf": token, "confirm": "order"})
    assert r.status_code == 400 and backend.deleted == []
    r = client.post("/c/dev/topics/orders/delete", data={"csrf": token, "confirm": "orders"}, follow_redirects=False)
    assert r.status_code == 303 and backend.deleted == [("dev", "orders")]


def test_reset_offsets_plans_first_then_executes(client, backend):
    page = client.get("/c/dev/group", params={"g": "billing"}).text
    token = csrf_of(page)
    r = client.post("/c/dev/group/reset", data={"csrf": token, "g": "billing", "to": "earliest", "execute": "0"})
    assert r.status_code == 200 and 'id="reset-dry"' in r.text and 'id="reset-execute"' in r.text
    assert backend.resets == [("billing", "earliest", None, [], False)]
    r = client.post("/c/dev/group/reset", data={"csrf": token, "g": "billing", "to": "offset", "value": "4",
                                                "topics": "orders", "execute": "1"})
    assert r.status_code == 200 and 'id="reset-done"' in r.text
    assert backend.resets[-1] == ("billing", "offset", 4, ["orders"], True)


# -- escaping and secrets ----------------------------------------------------------------------------------

def _no_hostile_markup(html: str) -> None:
    assert "<script>window" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert 'href="javascript:' not in html


@pytest.mark.parametrize("path,params", [
    ("/c/dev/status", {}), ("/c/dev/topics/orders", {}), ("/c/dev/topics/orders/messages", {}),
    ("/c/dev/topics/orders/messages", {"as": "json"}), ("/c/dev/groups", {}),
    ("/c/dev/group", {"g": HOSTILE[1]}), ("/c/dev/group/lag", {"g": HOSTILE[0]}), ("/c/dev/connect", {})])
def test_hostile_text_is_escaped_everywhere(client, path, params):
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    _no_hostile_markup(r.text)
    assert "&lt;script&gt;window.__x=1&lt;/script&gt;" in r.text or "&#34;&gt;&lt;img" in r.text


def test_messages_show_keys_values_headers_as_text(client):
    html = client.get("/c/dev/topics/orders/messages").text
    assert "&lt;script&gt;window.__x=1&lt;/script&gt;" in html
    assert "javascript:alert(1)" in html and 'href="javascript' not in html
    assert "\ufffd\ufffd&lt;b&gt;" in html            # invalid UTF-8 replaced, then escaped
    assert "{{ 7*7 }}" in html


def test_a_hostile_group_name_stays_text_in_links_and_forms(client):
    html = client.get("/c/dev/groups").text
    assert 'href="/c/dev/group?g=%22%3E%3Cimg%20src%3Dx%20onerror%3Dwindow.__x%3D2%3E"' in html
    page = client.get("/c/dev/group", params={"g": HOSTILE[1]}).text
    assert 'name="g" value="&#34;&gt;&lt;img src=x onerror=window.__x=2&gt;"' in page


def test_errors_are_escaped_and_redacted(client, backend, monkeypatch):
    def boom(cluster, topic):
        raise KopsError(f"cannot read <b>{topic}</b>: sasl.password={SECRET}", hint="<i>hint</i>")

    monkeypatch.setattr(backend, "topic", boom)
    r = client.get("/c/dev/topics/orders")
    assert r.status_code == 502
    assert SECRET not in r.text and "&lt;b&gt;orders&lt;/b&gt;" in r.text and "<i>" not in r.text


def test_no_page_holds_a_secret(client):
    for path in ("/", "/c/dev", "/c/dev/status", "/c/dev/topics", "/c/dev/topics/orders",
                 "/c/dev/topics/orders/messages", "/c/dev/groups", "/c/dev/group?g=x"):
        assert SECRET not in client.get(path).text, path


def test_an_unknown_cluster_or_topic_is_404(client):
    assert client.get("/c/nope/topics").status_code == 404
    r = client.get("/c/dev/topics/missing")
    assert r.status_code == 404 and "does not exist" in r.text


def test_bad_input_is_400_and_changes_nothing(client, backend):
    token = csrf_of(client.get("/c/dev/topics").text)
    for data in ({"topic": "bad name!"}, {"topic": "ok", "partitions": "x"}, {"topic": "ok", "partitions": "0"},
                 {"topic": "ok", "configs": "novalue"}):
        r = client.post("/c/dev/topics", data={**data, "csrf": token})
        assert r.status_code == 400, data
    assert backend.created == []
    assert client.get("/c/dev/topics/orders/messages", params={"n": "100000"}).status_code == 400


def test_produce_from_the_form(client, backend):
    token = csrf_of(client.get("/c/dev/topics/orders/messages").text)
    r = client.post("/c/dev/topics/orders/messages", data={"csrf": token, "key": "k1", "value": "line1\nline2",
                                                           "headers": "a=1\n\nb=x=y\n"}, follow_redirects=False)
    assert r.status_code == 303 and "offset+5" in r.headers["location"]
    assert backend.produced == [("orders", "k1", "line1\nline2", [("a", "1"), ("b", "x=y")])]
    client.post("/c/dev/topics/orders/messages", data={"csrf": token, "key": "", "value": "v"})
    assert backend.produced[-1][1] is None


def test_the_overview_polls_each_cluster_and_lists_the_others(client):
    html = client.get("/").text
    assert 'hx-get="/c/dev/status"' in html and 'hx-trigger="load, every 5s"' in html
    assert 'href="/c/other"' in html and 'hx-get="/c/other/status"' not in html
    assert '<script src="/static/htmx.min.js"></script>' in html
    js = client.get("/static/htmx.min.js")
    assert js.status_code == 200 and js.text.startswith("/*! htmx 2.0.4")


def test_the_topic_page_shows_the_balance_map(client):
    html = client.get("/c/dev/topics/orders").text
    assert 'class="cell-L">L<' in html and 'class="cell-o">o<' in html


# -- pure helpers ------------------------------------------------------------------------------------------

def test_balance_map():
    m = balance_map([{"partition": 0, "leader": 1, "replicas": [1, 2], "isr": [1, 2]},
                     {"partition": 1, "leader": 2, "replicas": [2, 3], "isr": [2]},
                     {"partition": 2, "leader": -1, "replicas": [3], "isr": []}])
    assert m["partitions"] == [0, 1, 2]
    rows = {r["broker"]: r for r in m["rows"]}
    assert rows[1]["cells"] == ["L", "", ""] and rows[2]["cells"] == ["R", "L", ""]
    assert rows[3]["cells"] == ["", "o", "o"] and rows[3]["leaders"] == 0 and rows[3]["replicas"] == 2


def test_text_json_when_sparkline_headers():
    assert text_of(None) is None and text_of(b"\xffa") == "\ufffda"
    assert json_of(b'{"a":1}') == '{\n  "a": 1\n}' and json_of(b"not json") == "not json"
    big = b'{"a": "' + b"x" * (uiapp.MAX_SHOWN + 10) + b'"}'
    assert text_of(big).endswith(f"[... {len(big)} bytes in all]") and json_of(big) == text_of(big)
    assert when(None) == "-" and when(0) == "1970-01-01 00:00:00.000Z"
    assert sparkline([5]) == "" and re.fullmatch(r"[0-9., ]+", sparkline([0, 3, 1, 7]))
    assert parse_headers("a=1\n\nb=c=d") == [("a", "1"), ("b", "c=d")]
    with pytest.raises(InputError):
        parse_headers("nosep")


def test_guard_compares_in_constant_time_and_binds_csrf_to_the_session():
    g = Guard(token="t" * 43)
    assert g.token_ok("t" * 43) and not g.token_ok("t" * 42) and not g.token_ok(None) and not g.token_ok("")
    assert g.csrf_ok("sid1", g.csrf_for("sid1")) and not g.csrf_ok("sid2", g.csrf_for("sid1"))
    assert not g.csrf_ok(None, g.csrf_for("sid1")) and not g.csrf_ok("sid1", None)
    assert uiapp.REFRESH_S <= 10


# -- the real backend's own logic (no cluster: its library calls replaced) ---------------------------------

def test_the_backend_shows_the_engines_clusters_and_the_inventorys():
    from kops.ui.backend import KopsBackend

    b = KopsBackend(lambda: ["a", "c"], lambda name: pytest.fail("no target needed"), ["b"])
    assert b.clusters() == ["a", "b", "c"] and b.focus() == ["b"]
    with pytest.raises(NotFoundError):
        b.status("zz")

    def no_engine():
        raise KopsError("no Docker engine answers")

    assert KopsBackend(no_engine, lambda n: None, ["b"]).clusters() == ["b"]
    assert KopsBackend(lambda: ["a"], lambda n: None, []).focus() == ["a"]


def test_a_new_topics_page_waits_for_its_leaders(monkeypatch):
    from kops.ui import backend as be

    b = be.KopsBackend(lambda: ["a"], lambda n: None, [])
    answers = [KopsError("offsets of t-2: Broker: Not leader for partition"), {"topic": "t"}]

    def fake_call(cluster, fn, *args, **kw):
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    monkeypatch.setattr(b, "_call", fake_call)
    monkeypatch.setattr(be.time, "sleep", lambda s: None)
    assert b.topic("a", "t") == {"topic": "t"}
    answers[:] = [KopsError("cannot read the cluster's metadata")]
    with pytest.raises(KopsError):
        b.topic("a", "t")


def test_the_connect_view_lists_connectors_or_says_there_is_no_worker(client):
    html = client.get("/c/dev/connect").text
    assert 'id="connectors"' in html and "FAILED" in html and "&lt;script&gt;" in html
    r = client.get("/c/other/connect")
    assert r.status_code == 200 and 'id="no-workers"' in r.text and "no running Kafka Connect worker" in r.text


# -- the command -------------------------------------------------------------------------------------------

def test_kops_ui_prints_its_tokened_url_on_stderr_and_serves_on_loopback(monkeypatch):
    from click.testing import CliRunner

    from kops.cli import ui as cliui
    from kops.cli.main import cli

    monkeypatch.setattr(cliui, "_engine_names", lambda: ["dev"])
    monkeypatch.delenv("KOPS_CLUSTER", raising=False)
    served = {}

    def fake_serve(app, sock):
        served["addr"] = sock.getsockname()
        served["app"] = app
        raise KeyboardInterrupt   # Ctrl-C: the normal end

    monkeypatch.setattr(cliui, "_serve", fake_serve)
    r = CliRunner().invoke(cli, ["ui", "--port", "0"])
    assert r.exit_code == 0, r.output
    m = re.search(r"kops ui: http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{40,})", r.stderr)
    assert m and served["addr"][0] == "127.0.0.1" and int(m.group(1)) == served["addr"][1]
    assert served["app"].state.guard.token == m.group(2)
    assert "kops ui stopped" in r.stderr and m.group(2) not in r.stdout


def test_kops_ui_refuses_an_address_it_cannot_serve_on_and_an_unknown_cluster(monkeypatch):
    from click.testing import CliRunner

    from kops.cli import ui as cliui
    from kops.cli.main import cli

    monkeypatch.setattr(cliui, "_engine_names", lambda: ["dev"])
    monkeypatch.setattr(cliui, "_serve", lambda app, sock: pytest.fail("nothing to serve"))
    r = CliRunner().invoke(cli, ["ui", "--bind", "203.0.113.7"])
    assert r.exit_code == 2 and "cannot serve on 203.0.113.7" in r.stderr
    r = CliRunner().invoke(cli, ["ui", "--name", "nope"])
    assert r.exit_code == 3 and "not on the Docker engine" in r.stderr
