"""`kops ui`: the web console's application (Starlette), its pages and its guards.

Guards, on every request:
* the token: the URL printed at start carries ``?token=...``; its first visit sets it as an
  HttpOnly, SameSite=Strict cookie (and a random session id beside it) and redirects to the
  same page without it. A request with neither the cookie nor the token is 403.
* CSRF: a request that changes something is a POST, and needs the CSRF token of its
  session (an HMAC of the session id) in its form (``csrf``) or in the ``X-CSRF-Token``
  header (htmx), and, when the browser sends one, an Origin that is this server's.
* escaping: Jinja's autoescape is on for every template, and a Content-Security-Policy
  allows only this server's own scripts (no inline script, no eval): topic names, group
  names, keys, values and headers are attacker-controlled text, and are shown as text.
* secrets: pages are rendered from the backend's plain data, which holds no client
  setting; error messages are redacted.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kops.core.errors import InputError, KopsError, NotFoundError
from kops.ui.backend import MAX_MESSAGES, words

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
REFRESH_S = 5
SAFE_METHODS = ("GET", "HEAD")
MAX_SHOWN = 64 * 1024       # bytes of a key, value or header shown (a larger one is cut, saying so)


class Guard:
    """The console's token and the CSRF tokens derived from it (one per browser session)."""

    def __init__(self, token: str | None = None, key: bytes | None = None):
        self.token = token or secrets.token_urlsafe(32)
        self.key = key or secrets.token_bytes(32)

    def cookie_names(self, port) -> tuple[str, str]:
        """Cookies are shared by every port of a host: two consoles side by side each keep
        their own (the port in the name)."""
        suffix = f"_{port}" if port else ""
        return f"kops_ui{suffix}", f"kops_ui_sid{suffix}"

    def token_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(value.encode(), self.token.encode())

    def csrf_for(self, sid: str) -> str:
        return hmac.new(self.key, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str | None, value: str | None) -> bool:
        return bool(sid) and bool(value) and hmac.compare_digest(value.encode(), self.csrf_for(sid).encode())


def _port(request: Request):
    server = request.scope.get("server")
    return server[1] if server else None


class GuardMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, guard: Guard):
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next):
        g = self.guard
        tok_name, sid_name = g.cookie_names(_port(request))
        given = request.query_params.get("token")
        if given is not None:
            if not g.token_ok(given):
                return _secured(PlainTextResponse("403: wrong token (use the URL `kops ui` printed)\n", 403))
            # first visit: the token becomes a cookie, the URL loses it (history, Referer, screen)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            resp = RedirectResponse(target, status_code=303)
            resp.set_cookie(tok_name, g.token, httponly=True, samesite="strict", path="/")
            sid = request.cookies.get(sid_name) or secrets.token_urlsafe(24)
            resp.set_cookie(sid_name, sid, httponly=True, samesite="strict", path="/")
            return _secured(resp)
        if not g.token_ok(request.cookies.get(tok_name)):
            return _secured(PlainTextResponse("403: this console needs its token: open the URL `kops ui` "
                                              "printed (http://HOST:PORT/?token=...)\n", 403))
        sid = request.cookies.get(sid_name)
        request.state.csrf = g.csrf_for(sid) if sid else ""
        if request.method not in SAFE_METHODS:
            if request.method != "POST":
                return _secured(PlainTextResponse("405: only GET and POST\n", 405))
            origin = request.headers.get("origin")
            if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
                return _secured(PlainTextResponse("403: cross-origin request refused\n", 403))
            value = request.headers.get("x-csrf-token")
            if value is None:
                ctype = request.headers.get("content-type", "")
                if ctype.startswith("application/x-www-form-urlencoded"):
                    # the body, read here, is replayed to the page (a form() parse here would not be)
                    body = await request.body()
                    value = (parse_qs(body.decode("latin-1"), max_num_fields=200).get("csrf") or [None])[0]
            if not g.csrf_ok(sid, value if isinstance(value, str) else None):
                return _secured(PlainTextResponse("403: missing or wrong CSRF token (reload the page)\n", 403))
        return _secured(await call_next(request))


def _secured(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin: no Referer leaves the console; "no-referrer" would make the browser send
    # "Origin: null" on its own form posts, which the origin check must refuse
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    return resp


# -- rendering helpers (pure: unit-tested) -------------------------------------------------------------------

def text_of(b: bytes | None) -> str | None:
    """Bytes as text (invalid UTF-8 replaced): what the page shows, escaped by the template;
    a large one cut at MAX_SHOWN bytes, saying so."""
    if b is None:
        return None
    if len(b) > MAX_SHOWN:
        return b[:MAX_SHOWN].decode("utf-8", errors="replace") + f" [... {len(b)} bytes in all]"
    return b.decode("utf-8", errors="replace")


def json_of(b: bytes | None) -> str | None:
    """The value pretty-printed when it is JSON, else its text."""
    t = text_of(b)
    if t is None or len(b) > MAX_SHOWN:
        return t
    try:
        return json.dumps(json.loads(t), indent=2, ensure_ascii=False)
    except ValueError:
        return t


def when(ms: int | None) -> str:
    if ms is None or ms < 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] \
        + "Z"


def balance_map(partitions: list[dict]) -> dict:
    """The broker x partition map of a topic: for each broker, per partition, ``L`` (leader),
    ``R`` (a replica in the ISR) or ``o`` (a replica out of the ISR), and its counts."""
    brokers = sorted({b for p in partitions for b in p["replicas"]} | {p["leader"] for p in partitions
                                                                       if p["leader"] is not None and p["leader"] >= 0})
    rows = []
    for b in brokers:
        cells = []
        for p in partitions:
            if p["leader"] == b:
                cells.append("L")
            elif b in p["replicas"]:
                cells.append("R" if b in p["isr"] else "o")
            else:
                cells.append("")
        rows.append({"broker": b, "cells": cells, "leaders": cells.count("L"),
                     "replicas": sum(1 for c in cells if c)})
    return {"partitions": [p["partition"] for p in partitions], "rows": rows}


def sparkline(values: list[int], width: int = 120, height: int = 24) -> str:
    """An inline SVG polyline's points for ``values`` (numbers only: safe in an attribute)."""
    if len(values) < 2:
        return ""
    hi = max(values) or 1
    step = width / (len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - (v / hi) * (height - 2) - 1:.1f}" for i, v in enumerate(values))


def parse_headers(text: str) -> list[tuple[str, str]]:
    """One ``name=value`` per line (an empty line is skipped)."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        k, sep, v = line.partition("=")
        if not sep or not k:
            raise InputError(f"header line {line[:60]!r} is not name=value")
        out.append((k, v))
    return out


# -- the application -----------------------------------------------------------------------------------------

def create_app(backend, guard: Guard | None = None) -> Starlette:
    """The console over ``backend`` (kops.ui.backend.KopsBackend, or a fake in the tests)."""
    from jinja2 import Environment, FileSystemLoader
    from starlette.templating import Jinja2Templates

    guard = guard or Guard()
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True)
    env.filters.update(text=text_of, json_text=json_of, when=when, q=lambda s: quote(str(s), safe=""))
    templates = Jinja2Templates(env=env)
    lag_history: dict[tuple[str, str], list[int]] = {}

    def page(request: Request, name: str, status_code: int = 200, **ctx) -> HTMLResponse:
        ctx.setdefault("cluster", None)
        return templates.TemplateResponse(request, name, {
            "csrf": getattr(request.state, "csrf", ""), "clusters": backend.clusters(), "refresh": REFRESH_S,
            "now": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S UTC"),
            "notice": request.query_params.get("done"), **ctx}, status_code=status_code)

    def failed(request: Request, exc: Exception, fragment: bool = False, **ctx) -> HTMLResponse:
        code = 400 if isinstance(exc, InputError) else 404 if isinstance(exc, NotFoundError) else 502
        return page(request, "_error.html" if fragment else "error.html", status_code=code, error=words(exc),
                    **ctx)

    def cluster_of(request: Request) -> str:
        name = request.path_params["cluster"]
        if name not in backend.clusters():
            raise NotFoundError(f"cluster {name} is not one this console shows", hint="kops ls lists them")
        return name

    async def call(fn, *args, **kwargs):
        return await run_in_threadpool(fn, *args, **kwargs)

    # -- overview --------------------------------------------------------------------------------------------

    async def overview(request: Request):
        return page(request, "overview.html", shown=backend.focus(),
                    others=[c for c in backend.clusters() if c not in backend.focus()])

    async def cluster_home(request: Request):
        try:
            c = cluster_of(request)
        except KopsError as exc:
            return failed(request, exc)
        return page(request, "overview.html", shown=[c], others=[], cluster=c)

    async def status_fragment(request: Request):
        try:
            c = cluster_of(request)
            st = await call(backend.status, c)
        except KopsError as exc:
            return failed(request, exc, fragment=True)
        return page(request, "_status.html", st=st, cluster=c)

    # -- topics ----------------------------------------------------------------------------------------------

    async def topics(request: Request):
        internal = request.query_params.get("internal") == "1"
        try:
            c = cluster_of(request)
            rows = await call(backend.topics, c, internal)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return page(request, "topics.html", cluster=c, rows=rows, internal=internal)

    async def topic_create(request: Request):
        form = await request.form()
        try:
            c = cluster_of(request)
            name = str(form.get("topic", "")).strip()
            parts = _int(form.get("partitions") or "1", "partitions", 1)
            rf_text = str(form.get("replication_factor") or "").strip()
            rf = _int(rf_text, "replication factor", 1) if rf_text else None
            from kops.kafka import data

            data.check_topic(name, "topic")
            cfg = data.parse_configs([ln.strip() for ln in str(form.get("configs", "")).splitlines() if ln.strip()],
                                     "config")
            await call(backend.create_topic, c, name, parts, rf, cfg)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return RedirectResponse(f"/c/{quote(c)}/topics/{quote(name, safe='')}?"
                                + urlencode({"done": f"topic {name} created"}), status_code=303)

    async def topic_page(request: Request):
        try:
            c = cluster_of(request)
            d = await call(backend.topic, c, request.path_params["topic"])
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return page(request, "topic.html", cluster=c, t=d, map=balance_map(d["partitions"]))

    async def topic_delete(request: Request):
        form = await request.form()
        topic = request.path_params["topic"]
        try:
            c = cluster_of(request)
            if str(form.get("confirm", "")) != topic:
                raise InputError(f"type the topic's name ({topic}) to confirm its deletion; nothing was deleted")
            await call(backend.delete_topic, c, topic)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return RedirectResponse(f"/c/{quote(c)}/topics?" + urlencode({"done": f"topic {topic} deleted"}),
                                status_code=303)

    # -- messages --------------------------------------------------------------------------------------------

    async def messages_page(request: Request):
        topic = request.path_params["topic"]
        as_ = "json" if request.query_params.get("as") == "json" else "text"
        try:
            c = cluster_of(request)
            n = _int(request.query_params.get("n") or "20", "n", 1, MAX_MESSAGES)
            rows = await call(backend.messages, c, topic, n)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return page(request, "messages.html", cluster=c, topic=topic, rows=rows, n=n, as_=as_)

    async def produce(request: Request):
        form = await request.form()
        topic = request.path_params["topic"]
        try:
            c = cluster_of(request)
            key = str(form.get("key", ""))
            value = str(form.get("value", ""))
            hdrs = parse_headers(str(form.get("headers", "")))
            got = await call(backend.produce, c, topic, key or None, value, hdrs)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return RedirectResponse(f"/c/{quote(c)}/topics/{quote(topic, safe='')}/messages?" + urlencode(
            {"done": f"message sent: partition {got['partition']}, offset {got['offset']}"}), status_code=303)

    # -- consumer groups -------------------------------------------------------------------------------------

    async def groups(request: Request):
        try:
            c = cluster_of(request)
            rows = await call(backend.groups, c)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return page(request, "groups.html", cluster=c, rows=rows)

    async def _group(request: Request):
        c = cluster_of(request)
        g = request.query_params.get("g", "")
        if not g:
            raise InputError("which group? (?g=NAME)")
        d = await call(backend.group, c, g)
        hist = lag_history.setdefault((c, g), [])
        hist.append(d["lag"])
        del hist[:-60]
        return c, g, d, hist

    async def group_page(request: Request):
        try:
            c, g, d, hist = await _group(request)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return page(request, "group.html", cluster=c, g=g, d=d, spark=sparkline(hist))

    async def group_fragment(request: Request):
        try:
            c, g, d, hist = await _group(request)
        except KopsError as exc:
            return failed(request, exc, fragment=True)
        return page(request, "_group.html", cluster=c, g=g, d=d, spark=sparkline(hist))

    async def group_reset(request: Request):
        form = await request.form()
        try:
            c = cluster_of(request)
            g = str(form.get("g", ""))
            to = str(form.get("to", ""))
            if to not in ("earliest", "latest", "offset", "datetime"):
                raise InputError("reset to: earliest, latest, offset or datetime")
            raw = str(form.get("value", "")).strip()
            value = None
            if to == "offset":
                value = _int(raw, "offset", 0)
            elif to == "datetime":
                from kops.kafka import data

                value = data.parse_time(raw)
            topics_ = [t.strip() for t in str(form.get("topics", "")).split(",") if t.strip()]
            execute = form.get("execute") == "1"
            res = await call(backend.reset_offsets, c, g, to, value, topics_, execute)
        except KopsError as exc:
            return failed(request, exc, cluster=request.path_params["cluster"])
        return page(request, "reset.html", cluster=c, g=g, res=res, form={
            "to": to, "value": raw, "topics": ",".join(topics_)})

    # -- Kafka Connect (read-only) ---------------------------------------------------------------------------

    async def connectors(request: Request):
        try:
            c = cluster_of(request)
        except KopsError as exc:
            return failed(request, exc)
        try:
            found = await call(backend.connectors, c)
        except NotFoundError as exc:
            return page(request, "connect.html", cluster=c, found=None, absent=words(exc))
        except KopsError as exc:
            return failed(request, exc, cluster=c)
        return page(request, "connect.html", cluster=c, found=found, absent=None)

    async def health(request: Request):
        return PlainTextResponse("ok\n")

    routes = [
        Route("/", overview),
        Route("/healthz", health),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/c/{cluster}", cluster_home),
        Route("/c/{cluster}/status", status_fragment),
        Route("/c/{cluster}/topics", topics),
        Route("/c/{cluster}/topics", topic_create, methods=["POST"]),
        Route("/c/{cluster}/topics/{topic}", topic_page),
        Route("/c/{cluster}/topics/{topic}/delete", topic_delete, methods=["POST"]),
        Route("/c/{cluster}/topics/{topic}/messages", messages_page),
        Route("/c/{cluster}/topics/{topic}/messages", produce, methods=["POST"]),
        Route("/c/{cluster}/groups", groups),
        Route("/c/{cluster}/group", group_page),
        Route("/c/{cluster}/group/lag", group_fragment),
        Route("/c/{cluster}/group/reset", group_reset, methods=["POST"]),
        Route("/c/{cluster}/connect", connectors),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(GuardMiddleware, guard=guard)])
    app.state.guard = guard
    return app


def _int(text, what: str, low: int, high: int | None = None) -> int:
    text = str(text).strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise InputError(f"{what}: {text[:30]!r} is not a whole number")
    v = int(text)
    if v < low or (high is not None and v > high):
        raise InputError(f"{what}: {v} is out of range ({low}-{high if high is not None else '...'})")
    return v
