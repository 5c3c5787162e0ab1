"""`kops ui` in a real browser (headless Debian chromium through selenium) on one real
cluster shared by the module: Kafka 4.4.0, KRaft, one node, the fast profile, ports of its
own. The console runs as the user runs it (`kops ui --name X --port 0`, its URL read from
stderr); what the page does is checked with the CLI (`kops topic list`, `kops produce`),
and hostile keys, values, headers and group names must stay text.

Screenshots of every view go to the test's tmp folder (their paths are printed), with the
time to first paint of each view.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

import kopsrun
from kopsrun import KOPS, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BROWSER_HINT = ("the browser tests need Debian's chromium and chromium-driver: scripts/setup.sh installs them "
                "(apt-get install chromium chromium-driver)")
HOSTILE_KEY = "<script>window.__x=1</script>"
HOSTILE_VALUE = '"><img src=x onerror=window.__x=2>'
HOSTILE_JSON = json.dumps({"html": HOSTILE_VALUE, "link": "javascript:window.__x=3"})
HOSTILE_GROUP = '"><img src=x onerror=window.__x=5>'
PAINTS: dict[str, float] = {}
SHOTS: list[str] = []


def _browser_paths() -> tuple[str, str]:
    browser = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "",
                                shutil.which("chromium-browser") or "") if p and os.access(p, os.X_OK)), None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.access("/usr/bin/chromedriver", os.X_OK)
                                              else None)
    if not (browser and driver):
        if os.environ.get("CI") == "true":   # in CI a missing browser fails the run, never a silent skip
            pytest.fail(f"no chromium/chromedriver: {BROWSER_HINT}", pytrace=False)
        pytest.skip(BROWSER_HINT)
    return browser, driver


class Cluster:
    def __init__(self, tmp: Path, name: str):
        self.name = name
        self.env = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "120"}
        self.env.pop("KOPS_CLUSTER", None)
        self.inv = tmp / "ui.yaml"
        self.inv.write_text(yaml.safe_dump({
            "name": name, "profile": "fast", "kafka": {"version": "4.4.0", "mode": "kraft", "heap": "256m"},
            "brokers": {"nodes": 1}, "ports": "auto", "driver": "docker"}, sort_keys=False))

    def kops(self, *args, input: str | None = None, timeout: float = 300):
        return kopsrun.kops(*args, env=self.env, input=input, timeout=timeout)

    def on(self, *args, **kw):
        return ok(self.kops(*args, "--name", self.name, **kw))


class Console:
    """`kops ui --name X --port 0` in a process of its own; its stderr is read as it comes."""

    def __init__(self, cluster: Cluster):
        self.proc = subprocess.Popen([KOPS, "ui", "--name", cluster.name, "--port", "0"], env=cluster.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        found = poll(lambda: next((m for m in map(re.compile(r"(http://\S+)/\?token=(\S+)").search, self.lines)
                                   if m), None) or self._dead(), timeout=60, what="the URL of `kops ui` on stderr")
        self.base, self.token = found.group(1), found.group(2)
        self.url = f"{self.base}/?token={self.token}"
        self.port = int(self.base.rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def _dead(self):
        assert self.proc.poll() is None, f"kops ui exited {self.proc.returncode}: {self.lines}"
        return None

    def stop(self, sig=signal.SIGINT, timeout: float = 20) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        return self.proc.returncode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, own_clusters_module):
    name = own_clusters_module(f"ui-{uuid.uuid4().hex[:6]}")
    c = Cluster(tmp_path_factory.mktemp("ui-cluster"), name)
    ok(c.kops("up", "-i", c.inv, timeout=600), "the module's cluster")
    yield c
    c.kops("down", "--name", name, "--purge", timeout=300)


@pytest.fixture(scope="module")
def console(cluster):
    con = Console(cluster)
    yield con
    con.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-screenshots")
    yield folder
    print(f"\nkops ui screenshots in {folder}:\n  " + "\n  ".join(SHOTS))
    print("time to first paint per view (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in PAINTS.items()))


@pytest.fixture(scope="module")
def browser(console):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _browser_paths()
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    d.set_page_load_timeout(60)
    d.get(console.url)             # the printed URL: its token becomes a cookie
    yield d
    d.quit()


def wait_for(browser, css: str, timeout: float = 60, text: str | None = None):
    """The first element matching ``css`` (containing ``text``), once there; htmx swaps
    parts of the page meanwhile, so a stale element counts as "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):
        els = d.find_elements(By.CSS_SELECTOR, css)
        return next((e for e in els if text is None or text in e.text), None)

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.25,
                             ignored_exceptions=(StaleElementReferenceException,)).until(found, css)
    except TimeoutException:
        raise AssertionError(f"no {css}{' with ' + repr(text) if text else ''} within {timeout:g} s at "
                             f"{browser.current_url}; the page:\n{browser.page_source[-3000:]}") from None


def read(browser, css: str, attr: str | None = None) -> str | None:
    """The text (or an attribute) of the first element matching ``css``, read in one go in
    the page (no element handle that an htmx swap could make stale)."""
    return browser.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "return e === null ? null : (arguments[1] ? e.getAttribute(arguments[1]) : e.textContent);", css, attr)


def view(browser, shots: Path, label: str, path: str, ready: str, text: str | None = None, base: str = ""):
    """Open ``path``, wait for ``ready``, note the time to first paint, save a screenshot."""
    if path:
        browser.get(base + path)
    el = wait_for(browser, ready, text=text)
    paint = browser.execute_script(
        "const p = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');"
        "return p ? p.startTime : performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd;")
    PAINTS[label] = float(paint or 0)
    shot = shots / f"{len(SHOTS) + 1:02d}-{label}.png"
    browser.save_screenshot(str(shot))
    SHOTS.append(str(shot))
    print(f"screenshot {label}: {shot} (first paint {PAINTS[label]:.0f} ms)")
    return el


def no_injection(browser) -> None:
    """Nothing hostile ran or became an element: window.__x unset, no <img>, no inline
    script, no javascript: link, no on* attribute anywhere in the DOM."""
    from selenium.webdriver.common.by import By

    assert browser.execute_script("return typeof window.__x") == "undefined"
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []
    assert [s.get_attribute("src") for s in browser.find_elements(By.TAG_NAME, "script")] == \
        [browser.current_url.split("/c/")[0].split("?")[0].rstrip("/") + "/static/htmx.min.js"]
    assert browser.find_elements(By.CSS_SELECTOR, "a[href^='javascript'], [onerror], [onload], [onclick]") == []


# -- the views -------------------------------------------------------------------------------------------

def test_the_overview_shows_the_node_healthy(browser, console, cluster, shots):
    view(browser, shots, "overview", "/", f"tr.node.ok[data-node='kafka1']", base=console.base)
    assert browser.current_url == console.base + "/"          # the token left the URL
    wait_for(browser, ".state[data-state='healthy']")
    page = browser.page_source
    assert cluster.name in page and "combined" in page and "registered" in page
    cookie = next(c for c in browser.get_cookies() if c["name"] == f"kops_ui_{console.port}")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] == console.token
    # htmx polls the status: the "read HH:MM:SS" stamp moves on without a reload
    first = read(browser, ".status p.muted")
    poll(lambda: read(browser, ".status p.muted") not in (None, first), timeout=30, what="the overview's refresh")


def test_a_topic_made_in_the_page_is_in_kops_topic_list(browser, console, cluster, shots):
    from selenium.webdriver.common.by import By

    view(browser, shots, "topics", f"/c/{cluster.name}/topics", "#create-topic", base=console.base)
    browser.find_element(By.ID, "new-topic").send_keys("ui-made")
    field = browser.find_element(By.NAME, "partitions")
    field.clear()
    field.send_keys("3")
    browser.find_element(By.ID, "create-topic-submit").click()
    view(browser, shots, "topic", "", "#balance", base=console.base)
    assert "topic ui-made created" in wait_for(browser, "#notice").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#balance td.cell-L")) == 3   # one broker leads all 3
    listed = json.loads(cluster.on("topic", "list", "--output", "json").stdout)
    assert {"topic": "ui-made", "partitions": 3} in [{k: r[k] for k in ("topic", "partitions")} for r in listed]


def test_a_topic_is_deleted_from_the_page_after_its_name_is_typed(browser, console, cluster):
    from selenium.webdriver.common.by import By

    cluster.on("topic", "create", "ui-doomed")
    browser.get(f"{console.base}/c/{cluster.name}/topics/ui-doomed")
    browser.find_element(By.ID, "delete-submit").click()          # nothing typed: refused
    assert "to confirm its deletion" in wait_for(browser, ".error").text
    browser.get(f"{console.base}/c/{cluster.name}/topics/ui-doomed")
    browser.find_element(By.ID, "delete-confirm").send_keys("ui-doomed")
    browser.find_element(By.ID, "delete-submit").click()
    assert "topic ui-doomed deleted" in wait_for(browser, "#notice").text
    listed = [r["topic"] for r in json.loads(cluster.on("topic", "list", "--output", "json").stdout)]
    assert "ui-doomed" not in listed and "ui-made" in listed


def test_kops_produce_shows_in_the_messages_view_and_the_form_produces(browser, console, cluster, shots):
    from selenium.webdriver.common.by import By

    cluster.on("produce", "ui-made", "-k", ":", "-H", "src=cli", input="k1:hello from kops produce\n")
    view(browser, shots, "messages", f"/c/{cluster.name}/topics/ui-made/messages", "tr.message",
         text="hello from kops produce", base=console.base)
    assert "src" in browser.find_element(By.CSS_SELECTOR, "#messages").text
    browser.find_element(By.ID, "produce-key").send_keys("k2")
    browser.find_element(By.ID, "produce-value").send_keys('{"from": "the form"}')
    browser.find_element(By.ID, "produce-submit").click()
    assert "message sent" in wait_for(browser, "#notice").text
    wait_for(browser, "tr.message", text='{"from": "the form"}')
    got = cluster.on("consume", "ui-made", "-n", "2", "-f", "%k=%v\\n", "--timeout", "30").stdout
    assert "k2={\"from\": \"the form\"}" in got


def test_a_groups_lag_is_shown_live_and_its_offsets_reset_after_the_plan(browser, console, cluster, shots):
    from selenium.webdriver.common.by import By

    cluster.on("topic", "create", "ui-lag", "-p", "2")
    cluster.on("produce", "ui-lag", input="".join(f"m{i}\n" for i in range(10)))
    cluster.on("consume", "ui-lag", "-g", "ui-group", "-n", "4", "--timeout", "60")
    view(browser, shots, "group", f"/c/{cluster.name}/group?g=ui-group", "#total-lag", base=console.base)
    assert read(browser, "#total-lag", "data-lag") == "6"
    view(browser, shots, "groups", f"/c/{cluster.name}/groups", "#groups", text="ui-group", base=console.base)
    browser.get(f"{console.base}/c/{cluster.name}/group?g=ui-group")
    cluster.on("produce", "ui-lag", input="more1\nmore2\n")
    # htmx refreshes the lag without a reload
    poll(lambda: read(browser, "#total-lag", "data-lag") == "8", timeout=60,
         what="the group page's live lag")
    browser.find_element(By.ID, "reset-plan").click()              # earliest: the plan first
    view(browser, shots, "reset-plan", "", "#reset-dry", base=console.base)
    assert "nothing was changed" in browser.find_element(By.ID, "reset-dry").text
    described = json.loads(cluster.on("group", "describe", "ui-group", "--output", "json").stdout)
    assert described["lag"] == 8                                   # the plan changed nothing
    browser.find_element(By.ID, "reset-execute").click()
    wait_for(browser, "#reset-done")
    described = json.loads(cluster.on("group", "describe", "ui-group", "--output", "json").stdout)
    assert described["lag"] == 12


def test_hostile_keys_values_headers_and_group_names_stay_text(browser, console, cluster, shots):
    cluster.on("topic", "create", "ui-xss")
    cluster.on("produce", "ui-xss", "-k", "\t", "-H", f"h1={HOSTILE_KEY}", "-H", "link=javascript:window.__x=4",
               "-H", f"{HOSTILE_VALUE}=x",
               input=f"{HOSTILE_KEY}\t{HOSTILE_VALUE}\n{HOSTILE_VALUE}\t{HOSTILE_JSON}\njavascript:alert(1)\t{HOSTILE_KEY}\n")
    cluster.on("consume", "ui-xss", "-g", HOSTILE_GROUP, "-n", "1", "--timeout", "60")
    for label, path, ready in [
            ("messages-xss", f"/c/{cluster.name}/topics/ui-xss/messages", "tr.message"),
            ("messages-xss-json", f"/c/{cluster.name}/topics/ui-xss/messages?as=json", "tr.message"),
            ("groups-xss", f"/c/{cluster.name}/groups", "#groups a"),
            ("group-xss", f"/c/{cluster.name}/group?g={quote(HOSTILE_GROUP)}",
             "#total-lag")]:
        view(browser, shots, label, path, ready, base=console.base)
        no_injection(browser)
        text = browser.find_element("tag name", "body").text
        if label.startswith("messages"):
            assert HOSTILE_KEY in text and "onerror=window.__x=2" in text and "javascript:" in text
        else:
            assert HOSTILE_GROUP in text
    time.sleep(6)   # one more htmx refresh of the group page: still nothing ran
    no_injection(browser)


def test_the_connect_view_says_there_is_no_worker(browser, console, cluster, shots):
    view(browser, shots, "connect", f"/c/{cluster.name}/connect", "#no-workers", base=console.base)
    assert "no running Kafka Connect worker" in read(browser, "#no-workers")


def test_a_post_without_the_csrf_token_is_403(browser, console, cluster):
    import requests

    browser.get(f"{console.base}/c/{cluster.name}/topics")
    # the page's own cookies, sent by the browser itself, but no CSRF token
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/c/" + cluster.name + "/topics', {method: 'POST', body: new URLSearchParams({topic: 'ui-csrf'})})"
        ".then(r => done(r.status)).catch(e => done(String(e)));")
    assert status == 403
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    r = requests.post(f"{console.base}/c/{cluster.name}/topics", data={"topic": "ui-csrf", "csrf": "0" * 64},
                      cookies=cookies, timeout=30, allow_redirects=False)
    assert r.status_code == 403
    listed = [r["topic"] for r in json.loads(cluster.on("topic", "list", "--output", "json").stdout)]
    assert "ui-csrf" not in listed


def test_a_request_without_the_token_is_403(console, cluster):
    import requests

    for path in ("/", f"/c/{cluster.name}/topics", f"/c/{cluster.name}/status", "/static/htmx.min.js"):
        assert requests.get(console.base + path, timeout=30).status_code == 403, path
    assert requests.post(f"{console.base}/c/{cluster.name}/topics", data={"topic": "x"}, timeout=30).status_code \
        == 403
    assert requests.get(f"{console.base}/?token=wrong", timeout=30, allow_redirects=False).status_code == 403
    assert console.token not in requests.get(console.base + "/", timeout=30).text


def test_the_overview_degrades_when_the_broker_stops(browser, console, cluster, shots, docker_client):
    """Last on the cluster: its only broker is stopped behind kops's back."""
    docker_client.containers.get(f"{cluster.name}-kafka1").stop(timeout=20)
    browser.get(f"{console.base}/c/{cluster.name}")
    poll(lambda: read(browser, ".status .state", "data-state") not in (None, "healthy"), timeout=60,
         what="the overview to show the cluster not healthy")
    view(browser, shots, "overview-degraded", "", "tr.node.bad[data-node='kafka1']", base=console.base)
    if read(browser, ".status .state", "data-state") == "degraded":
        assert "problem:" in read(browser, ".status")


def test_ctrl_c_stops_the_console_and_leaves_nothing_running(console):
    code = console.stop(signal.SIGINT, timeout=20)
    assert code == 0, f"kops ui after Ctrl-C: exit {code}; stderr: {console.lines}"
    assert any("kops ui stopped" in line for line in console.lines)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", console.port)) != 0, "the port still answers"
    children = subprocess.run(["pgrep", "-P", str(console.proc.pid)], capture_output=True, text=True).stdout
    assert not children.strip()
