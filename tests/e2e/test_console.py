"""The web console (issue 18) in a real browser: Playwright driving Debian's chromium against a
router with its own SQLite store and the shared fake upstream behind it. Signs in per role,
renders every page without a console error (a CSP violation is one), finds a request made
with the openai SDK in Requests and by id, checks 403s, cookie flags, CSV download and sign-out.
Screenshots of every page go to tests/e2e/artifacts/ (ignored by git)."""

import os
import pathlib
import shutil
import tempfile
import time
import urllib.error
import urllib.request

import openai
import pytest

from conftest import ROOT, ROUTER_BIN, _spawn

ARTIFACTS = ROOT / "tests/e2e/artifacts"
ADMIN, REPORTS, METRICS, APP = "console-admin-token", "console-reports-token", "console-metrics-token", "console-app-token"

CONFIG = """
[server]
listen = "127.0.0.1:0"
name = "console-router"

[store]
url = "sqlite://{db}"
spool_path = "{spool}"
flush_interval_ms = 20

[providers.fake]
kind = "openai"
base_url = "{fake}/v1"
api_key = "sk-console-upstream"

[groups.fast]
[[groups.fast.targets]]
provider = "fake"
model = "fake-fast"
price = {{ input = 3.0, output = 15.0 }}
[[groups.fast.targets]]
provider = "fake"
model = "fake-spare"
weight = 0

[[callers]]
name = "ops-admin"
roles = ["admin"]
token = "{admin}"

[[callers]]
name = "finance"
roles = ["report-admin"]
token = "{reports}"

[[callers]]
name = "prometheus"
roles = ["metrics-admin"]
token = "{metrics}"

[[callers]]
name = "checkout-app"
project = "checkout"
groups = ["fast"]
token = "{app}"
"""

PAGES = ["/console/", "/console/usage", "/console/requests", "/console/targets", "/console/system"]


def _chromium():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("Debian's chromium is not installed (scripts/test installs it)")
    return path


@pytest.fixture(scope="module")
def router(stack):
    tmp = pathlib.Path(tempfile.mkdtemp())
    cfg = tmp / "router.toml"
    cfg.write_text(CONFIG.format(db=tmp / "usage.db", spool=tmp / "usage.spool", fake=stack["fake"].url,
                                 admin=ADMIN, reports=REPORTS, metrics=METRICS, app=APP))
    proc, url = _spawn([ROUTER_BIN, "serve", "--config", str(cfg)], "smart-router listening on ")
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True)
        yield b
        b.close()


class Console:
    """One browser context (cookie jar) with every console error it saw."""

    def __init__(self, browser, base):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.errors = []
        # Script errors and CSP violations; a failed document load is asserted by status where
        # expected, while any failed subresource (style, script, icon) is an error.
        self.page.on("console", lambda m: m.type == "error" and not m.text.startswith(
            "Failed to load resource: the server responded with a status of") and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        # (A load cut short by the next navigation is not a failure.)
        self.page.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED"
                     and self.errors.append(f"failed: {r.url} {r.failure}"))
        self.page.on("response", lambda r: r.status >= 400 and r.request.resource_type != "document"
                     and self.errors.append(f"{r.status}: {r.url}"))

    def goto(self, path):
        return self.page.goto(self.base + path)

    def sign_in(self, token):
        self.goto("/console/login")
        self.page.fill("#token", token)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")

    def shot(self, name):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)

    def close(self):
        self.context.close()


def _traffic(router, fake, request_id):
    """A few SDK requests (one of them with a known id, one failing) and waits until the known
    one is in the store."""
    sdk = openai.OpenAI(base_url=router + "/v1", api_key=APP, max_retries=0)
    fake.script(text="hello from the fake")
    sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}],
                                extra_headers={"x-request-id": request_id})
    for i in range(3):
        sdk.chat.completions.create(model="fast", messages=[{"role": "user", "content": f"n{i}"}])
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-group", messages=[{"role": "user", "content": "x"}])
    deadline = time.time() + 10
    while time.time() < deadline:
        req = urllib.request.Request(router + f"/admin/requests/{request_id}",
                                     headers={"authorization": f"Bearer {ADMIN}"})
        try:
            with urllib.request.urlopen(req, timeout=5):
                return
        except urllib.error.HTTPError as e:
            assert e.code == 404
        time.sleep(0.05)
    pytest.fail("the request was not recorded")


def test_admin_sees_every_page_and_finds_a_request(router, browser, stack):
    rid = f"console-e2e-{int(time.time() * 1000)}"
    _traffic(router, stack["fake"], rid)
    c = Console(browser, router)
    try:
        # Signed out, every page sends to the sign-in form.
        c.goto("/console/requests")
        assert c.page.url.endswith("/console/login")
        c.sign_in(ADMIN)
        assert c.page.url == router + "/console/", "no token in any URL"
        cookie = next(k for k in c.context.cookies() if k["name"] == "smart_router_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
        assert ADMIN not in cookie["value"]
        for path in PAGES:
            resp = c.goto(path)
            assert resp.status == 200, path
            csp = resp.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            nav = c.page.locator("header nav a").all_inner_texts()
            assert nav == ["Overview", "Usage", "Requests", "Targets", "System"]
            c.shot(path.rstrip("/").split("/")[-1].replace("console", "overview"))
        # Overview: the tiles count our requests, the charts are drawn.
        c.goto("/console/?window=1h")
        assert int(c.page.inner_text("[data-tile=requests]").replace(",", "")) >= 5
        assert c.page.locator("figure.chart svg rect").count() > 0
        assert "checkout-app" in c.page.inner_text("section.top")
        # Requests: our id is listed; its page shows the attempt; the lookup finds it too.
        c.goto("/console/requests?caller=checkout-app")
        c.page.click(f"text={rid}")
        assert c.page.url.endswith(f"/console/requests/{rid}")
        detail = c.page.inner_text("main")
        assert "fake/fake-fast" in detail and "200 ok" in detail and "from a client (first hop)" in detail
        assert c.page.locator("table.attempts tbody tr").count() == 1
        c.shot("request")
        c.goto("/console/requests")
        c.page.fill("input[name=id]", rid)
        with c.page.expect_navigation():
            c.page.click("form[action='/console/requests/lookup'] button")
        assert c.page.url.endswith(f"/console/requests/{rid}")
        assert c.goto("/console/requests/no-such-request").status == 404
        assert "No usage record has this request id" in c.page.inner_text("main")
        # The failed request is listed under status=error.
        c.goto("/console/requests?status=error")
        rows = c.page.locator("table.requests tbody tr")
        assert rows.count() >= 1 and rows.count() == c.page.locator("table.requests tbody tr.error").count()
        assert "404 error" in c.page.inner_text("table.requests")
        # System: admin sees the config section with the hash in force.
        c.goto("/console/system")
        assert c.page.locator("#config").count() == 1
        assert c.page.locator("#license").count() == 1
        # Targets: both targets of `fast`, the served one with traffic.
        c.goto("/console/targets")
        targets = c.page.inner_text("table.targets")
        assert "fake/fake-fast" in targets and "fake/fake-spare" in targets and "healthy" in targets
        assert c.errors == [], c.errors
    finally:
        c.close()


def test_usage_explorer_groups_sorts_and_downloads_csv(router, browser, stack):
    _traffic(router, stack["fake"], f"console-usage-{int(time.time() * 1000)}")
    c = Console(browser, router)
    try:
        c.sign_in(REPORTS)
        c.goto("/console/usage")
        for dim in ("caller", "model"):
            c.page.check(f"input[name=group_by][value={dim}]")
        c.page.uncheck("input[name=group_by][value=group]")
        with c.page.expect_navigation():
            c.page.click("form.picker button")
        heads = c.page.locator("table.report thead th").all_inner_texts()
        assert heads[:2] == ["caller", "model"]
        assert "checkout-app" in c.page.inner_text("table.report")
        with c.page.expect_navigation():
            c.page.click("th a[data-sort=requests]")
        counts = [float(v) for v in c.page.locator("table.report tbody td:nth-child(3)").evaluate_all(
            "cells => cells.map(c => c.dataset.v)")]
        assert counts == sorted(counts, reverse=True) and len(counts) >= 2
        with c.page.expect_download() as d:
            c.page.click("text=Download CSV")
        csv = pathlib.Path(d.value.path()).read_text()
        assert csv.splitlines()[0].startswith("caller,model,requests,errors")
        assert "checkout-app,fake-fast," in csv
        # report-admin: no config section, but license and quotas.
        c.goto("/console/system")
        assert c.page.locator("#config").count() == 0
        assert c.page.locator("#license").count() == 1
        assert c.errors == [], c.errors
    finally:
        c.close()


def test_metrics_admin_sees_targets_and_system_only(router, browser):
    c = Console(browser, router)
    try:
        c.sign_in(METRICS)
        assert c.page.url.endswith("/console/targets")
        assert c.page.locator("header nav a").all_inner_texts() == ["Targets", "System"]
        for path in ("/console/", "/console/usage", "/console/requests", "/console/usage.csv"):
            resp = c.goto(path)
            assert resp.status == 403, path
            assert "needs the report-admin role" in c.page.inner_text("main")
        c.goto("/console/system")
        assert c.page.locator("#license").count() == 0 and c.page.locator("#config").count() == 0
        assert c.page.locator("#store").count() == 1
        assert c.errors == [], c.errors
    finally:
        c.close()


def test_a_caller_token_or_unknown_token_cannot_sign_in(router, browser):
    c = Console(browser, router)
    try:
        c.goto("/console/login")
        c.page.fill("#token", APP)
        with c.page.expect_response(lambda r: r.url.endswith("/console/login") and r.request.method == "POST") as r:
            c.page.click("button[type=submit]")
        assert r.value.status == 403
        assert "no console role" in c.page.inner_text("[role=alert]")
        assert not [k for k in c.context.cookies() if k["name"] == "smart_router_console"]
        c.page.fill("#token", "not-a-token")
        with c.page.expect_response(lambda r: r.url.endswith("/console/login") and r.request.method == "POST") as r:
            c.page.click("button[type=submit]")
        assert r.value.status == 401
        assert "Unknown token" in c.page.inner_text("[role=alert]")
        c.shot("login")
        c.goto("/console/system")
        assert c.page.url.endswith("/console/login")
        assert c.errors == [], c.errors
    finally:
        c.close()


def test_sign_out_ends_the_session(router, browser):
    c = Console(browser, router)
    try:
        c.sign_in(ADMIN)
        cookie = next(k for k in c.context.cookies() if k["name"] == "smart_router_console")
        with c.page.expect_navigation():
            c.page.click("header button")
        assert c.page.url.endswith("/console/login")
        assert not [k for k in c.context.cookies() if k["name"] == "smart_router_console"]
        # The old cookie no longer opens anything.
        req = urllib.request.Request(router + "/console/system",
                                     headers={"cookie": f"smart_router_console={cookie['value']}"})
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(req, timeout=5)
        assert e.value.code == 303 and e.value.headers["location"] == "/console/login"
    finally:
        c.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
