"""The dashboard in real headless Chromium: register, log out, log in, log out.

Runs the whole `reflex run` (frontend + backend + dev services) on free ports. The first run
builds the frontend, which takes a couple of minutes on two cores.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_or_skip
from tests.reflex_proc import ReflexProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Screenshots of every screen are kept as test artifacts (gitignored); override the folder
# with ATS_SCREENSHOT_DIR.
SHOTS = Path(
    os.environ.get("ATS_SCREENSHOT_DIR")
    or Path(__file__).resolve().parents[1] / ".test-artifacts" / "screenshots"
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReflexProcess]:
    require_or_skip(Path(CHROMIUM).exists(), "Debian chromium at /usr/bin/chromium")
    proc = ReflexProcess(
        tmp_path_factory.mktemp("browser") / "data",
        backend_only=False,
        env={"MARKET_HOURS": "always"},
    )  # paper demo: trades at any hour
    proc.start(timeout=600)
    yield proc
    proc.stop()


@pytest.fixture
def page(app: ReflexProcess):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine, not a fast laptop
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 800},
                                      permissions=["clipboard-read", "clipboard-write"])
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_register_login_logout(app: ReflexProcess, page) -> None:
    from playwright.sync_api import expect

    # A protected page sends a stranger to the login page.
    page.goto(f"{app.frontend}/")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    _shot(page, "login")

    page.click("#to-register")
    expect(page).to_have_url(re.compile(r"/register/?$"))
    page.fill("#first_name", "Asha")
    page.fill("#last_name", "Rao")
    page.fill("#username", "asha")
    page.fill("#password", "correct-horse-1")
    page.fill("#confirm", "correct-horse-2")
    page.click("#register-submit")
    expect(page.locator("#form-error")).to_contain_text("do not match")
    page.fill("#confirm", "correct-horse-1")
    page.click("#register-submit")

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#welcome")).to_contain_text("Asha Rao")
    expect(page.locator("#mode-banner")).to_contain_text("PAPER TRADING")
    _shot(page, "overview")

    page.reload()  # the session survives a reload
    expect(page.locator("#welcome")).to_contain_text("Asha Rao")

    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    page.goto(f"{app.frontend}/profile")
    expect(page).to_have_url(re.compile(r"/login/?$"))  # logged out means logged out

    page.fill("#username", "asha")
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    expect(page.locator("#form-error")).to_contain_text(
        re.compile("wrong username or password", re.I)
    )

    page.fill("#password", "correct-horse-1")
    page.click("#login-submit")
    expect(page.locator("#welcome")).to_contain_text("Asha Rao")

    page.click("#bot-start")
    expect(page.locator("#bot-state")).to_have_text("RUNNING")

    # Phone width and 1366x768: nothing wider than the screen (tables scroll in their box).
    for width, height in ((390, 844), (1366, 768)):
        page.set_viewport_size({"width": width, "height": height})
        for route in ("/", "/webhooks", "/orders", "/positions"):
            page.goto(f"{app.frontend}{route}")
            expect(page.locator("#nav-overview")).to_be_visible()
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{route} overflows {overflow}px at {width}px wide"
        _shot(page, f"overview-{width}")
    page.set_viewport_size({"width": 1200, "height": 800})

    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/?$"))


def _register(page, app: ReflexProcess, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{app.frontend}/register")
    page.fill("#first_name", "Ravi")
    page.fill("#last_name", "Iyer")
    page.fill("#username", username)
    page.fill("#password", "correct-horse-1")
    page.fill("#confirm", "correct-horse-1")
    page.click("#register-submit")
    expect(page.locator("#welcome")).to_contain_text("Ravi Iyer")


def test_trading_flow_paper(app: ReflexProcess, page) -> None:
    """Account → strategy → paper link → alert to its URL → order and position on screen →
    downloads → bulk delete → bot stopped means the next alert is ignored."""
    import json

    import httpx
    from playwright.sync_api import expect

    _register(page, app, "ravi")
    page.click("#bot-start")
    expect(page.locator("#bot-state")).to_have_text("RUNNING")

    page.click("#nav-accounts")
    page.click("#add-simulated")
    expect(page.locator("#accounts")).to_contain_text("SIM0001")
    page.locator("[id^=test-]").filter(has_text="Test connection").first.click()
    expect(page.locator("[id^=test-result-]").first).to_contain_text("OK", timeout=30_000)
    _shot(page, "accounts")
    # Edit keeps the secrets it is not given: rename only, then test the connection again.
    page.locator("#accounts tr", has_text="SIM0001").get_by_role("button", name="Edit").click()
    expect(page.locator("#acc-base_url")).to_have_value(re.compile(r"^http://127\.0\.0\.1:"))
    expect(page.locator("#acc-pin")).to_have_value("")  # secrets are never sent back
    page.fill("#acc-label", "Demo account")
    # A local source address: the simulator (no registered IP here) listens on loopback.
    page.fill("#acc-egress_source_ip", "127.0.0.1")
    page.click("#acc-save")
    expect(page.locator("#accounts")).to_contain_text("Demo account")
    expect(page.locator("#accounts")).to_contain_text("from 127.0.0.1")
    expect(page.locator("[id^=test-result-]").first).to_have_text("")  # the old result is gone
    page.locator("[id^=test-]").filter(has_text="Test connection").first.click()
    expect(page.locator("[id^=test-result-]").first).to_contain_text("OK", timeout=30_000)
    expect(page.locator("[id^=test-result-]").first).to_contain_text(
        "orders leave from 127.0.0.1")
    # A second edit starts from the stored values, so saving it keeps the source address.
    page.locator("#accounts tr", has_text="Demo account").get_by_role("button", name="Edit").click()
    expect(page.locator("#acc-egress_source_ip")).to_have_value("127.0.0.1")
    page.fill("#acc-label", "Demo account 2")
    page.click("#acc-save")
    row = page.locator("#accounts tr", has_text="Demo account 2")
    expect(row).to_contain_text("from 127.0.0.1")  # saved (new label) and not wiped

    page.click("#nav-strategies")
    page.fill("#strategy-name", "Opening range breakout")
    page.click("#strategy-save")
    expect(page.locator("#strategies")).to_contain_text("Opening range breakout")
    page.fill("#strategy-name", "Scratch idea")
    page.click("#strategy-save")
    expect(page.locator("#strategies")).to_contain_text("Scratch idea")
    page.locator("#strategies tr", has_text="Scratch idea").get_by_role(
        "button", name="Delete"
    ).click()
    page.click("#delete-strategy-ok")  # asks first
    expect(page.locator("#strategies")).not_to_contain_text("Scratch idea")
    expect(page.locator("#strategies")).to_contain_text("Opening range breakout")
    _shot(page, "strategies")

    page.click("#nav-webhooks")
    page.fill("#link-name", "NIFTY ORB")
    page.select_option("#link-strategy", label="Opening range breakout")
    page.fill("#link-sl", "150")  # out of range: a clear message, nothing saved
    page.click("#link-save")
    expect(page.locator("#form-error")).to_contain_text("Stop-loss % (stop_loss_pct) must be")
    page.fill("#link-sl", "20")
    page.fill("#link-target", "40")
    page.fill("#link-tsl", "10")
    page.click("#link-save")
    expect(page.locator("#links")).to_contain_text("NIFTY ORB")
    url = page.locator("[id^=url-]").first.inner_text()
    page.locator("[id^=copy-]").first.click()  # the Copy button puts the URL on the clipboard
    page.wait_for_function("u => navigator.clipboard.readText().then(t => t === u)", arg=url)
    page.locator("[id^=reveal-]").first.click()
    secret = page.locator("[id^=secret-]").first.inner_text()
    expect(page.locator("[id^=message-]").first).to_contain_text('"secret"')
    _shot(page, "webhooks")

    api_url = app.backend + url[url.index("/webhook/") :]
    alert = {
        "secret": secret,
        "action": "buy",
        "symbol": "NIFTY",
        "option": "CE",
        "strike": "ATM",
        "lots": 1,
        "id": "browser-1",
    }
    resp = httpx.post(api_url, content=json.dumps(alert), timeout=10)
    assert resp.status_code == 202, resp.text

    page.click("#nav-orders")
    for _ in range(30):  # the worker fills it within seconds; reload the list until then
        page.click("#filter-apply")
        # No table until there is an order (the page says "No orders match." instead).
        if page.locator("#orders").count() and "FILLED" in page.locator("#orders").inner_text():
            break
        page.wait_for_timeout(1000)
    expect(page.locator("#orders")).to_contain_text("FILLED")
    expect(page.locator("#orders")).to_contain_text("paper")
    _shot(page, "orders")
    with page.expect_download() as dl:
        page.click("#download-csv")
    csv_text = Path(dl.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("id,alert_id,created_at")
    assert "FILLED" in csv_text and "NIFTY" in csv_text
    with page.expect_download() as dl:
        page.click("#download-json")
    rows = json.loads(Path(dl.value.path()).read_text())
    assert len(rows) == 1 and rows[0]["status"] == "FILLED" and rows[0]["mode"] == "paper"

    page.click("#nav-overview")
    expect(page.locator("#open-positions")).to_contain_text("NIFTY")
    _shot(page, "overview-position")
    page.click("#nav-positions")
    expect(page.locator("#positions")).to_contain_text("OPEN")
    _shot(page, "positions")

    page.click("#nav-orders")
    page.click("#bulk-delete")
    expect(page.get_by_text("Delete 1 order matching the filters?")).to_be_visible()
    page.click("#delete-orders-ok")
    expect(page.locator("#orders-count")).to_have_text("No orders")

    page.click("#nav-overview")
    page.click("#kill-switch")  # asks first: it spends money
    page.click("#kill-ok")
    expect(page.locator("#kill-result")).to_contain_text("Kill switch done", timeout=40_000)
    expect(page.locator("#kill-result")).to_contain_text("1 position(s) being exited")
    expect(page.locator("#halted")).to_be_visible()
    expect(page.locator("#bot-state")).to_have_text("STOPPED")
    _shot(page, "kill-switch")
    page.click("#nav-webhooks")  # "Send test alert" runs the real intake: the bot is stopped now
    page.locator("[id^=test-alert-]").first.click()
    expect(page.locator("[id^=result-]").first).to_contain_text("bot_stopped")
    alert["id"] = "browser-2"
    resp = httpx.post(api_url, content=json.dumps(alert), timeout=10)
    assert resp.status_code == 200 and resp.json()["reason"] == "bot_stopped"

    page.click("#nav-audit")
    expect(page.locator("#audit")).to_contain_text("alert.received")
    _shot(page, "audit")
    page.click("#nav-positions")
    for _ in range(30):  # the kill switch's exit job sells it within seconds
        page.click("text=Refresh")
        if "kill switch" in page.locator("#positions").inner_text():
            break
        page.wait_for_timeout(1000)
    expect(page.locator("#positions")).to_contain_text("CLOSED")
    expect(page.locator("#positions")).to_contain_text("kill switch")
    page.click("#nav-overview")
    expect(page.locator("#pnl-chart")).to_be_visible()  # the day's realized P&L, charted
    _shot(page, "overview-closed")

    page.click("#nav-profile")
    expect(page.locator("#profile-name")).to_contain_text("Ravi Iyer")
    expect(page.locator("#limit-max_open_positions")).to_have_value("5")  # current limits shown
    page.fill("#limit-max_lots_per_order", "2")
    page.click("#limits-save")
    expect(page.locator("#form-message")).to_contain_text("Risk limits saved")
    expect(page.locator("#limit-max_open_positions")).to_have_value("5")  # others unchanged
    expect(page.locator("#limit-max_lots_per_order")).to_have_value("2")
    page.fill("#notify-url", "not a url")
    page.get_by_role("button", name="Add target").click()
    expect(page.locator("#form-error")).to_be_visible()
    _shot(page, "profile")


def test_live_pnl_moves_and_trailing_stop_closes(app: ReflexProcess, page) -> None:
    """A paper position's P&L changes on screen as the simulator moves the price (monitor →
    Redis pub/sub → state, no reload), and the trailing stop closes it."""
    import json
    import subprocess
    import sys

    import httpx
    from playwright.sync_api import expect

    _register(page, app, "meera")
    page.click("#bot-start")
    expect(page.locator("#bot-state")).to_have_text("RUNNING")

    def cli(*args: str) -> dict | list:
        out = subprocess.run(
            [sys.executable, "-m", "ats_app.cli", *args, "--json"],
            env=app.env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    link = cli(
        "webhook",
        "create",
        "--user",
        "meera",
        "--name",
        "trail",
        "--sl",
        "20",
        "--tsl",
        "5",
        "--paper",
    )
    alert = {
        "secret": link["secret"],
        "action": "buy",
        "symbol": "NIFTY",
        "option": "CE",
        "strike": "ATM",
        "lots": 1,
        "id": "trail-1",
    }
    resp = httpx.post(f"{app.backend}/webhook/{link['token']}", content=json.dumps(alert))
    assert resp.status_code == 202, resp.text
    sim = f"http://127.0.0.1:{app.simulator_port}"
    deadline = time.monotonic() + 60
    while not (positions := cli("positions", "list", "--user", "meera")):
        assert time.monotonic() < deadline, "no position opened"
        time.sleep(0.5)
    (pos,) = positions
    entry = float(pos["entry_price"])
    token = pos["symboltoken"]

    page.click("#nav-overview")
    pnl_cell = page.locator("#open-positions tbody tr").first.locator("td").nth(8)
    # Pin the option's price above entry, then higher: the P&L cell follows by itself.
    for price in (round(entry * 1.02, 1), round(entry * 1.10, 1)):
        httpx.post(f"{sim}/sim/price", json={"token": token, "ltp": price}).raise_for_status()
        expected = f"{(price - entry) * pos['quantity']:.2f}"
        expect(pnl_cell).to_have_text(expected, timeout=20_000)
    _shot(page, "overview-live-pnl")
    # Fall 6 % from the peak: through the 5 % trailing stop (the 20 % stop-loss is far below).
    httpx.post(
        f"{sim}/sim/price", json={"token": token, "ltp": round(entry * 1.10 * 0.94, 1)}
    ).raise_for_status()
    deadline = time.monotonic() + 60
    while (closed := cli("positions", "list", "--user", "meera"))[0]["status"] != "CLOSED":
        assert time.monotonic() < deadline, closed
        time.sleep(0.5)
    assert closed[0]["exit_reason"] == "trailing_stop"
    expect(page.locator("#open-positions-empty")).to_be_visible(timeout=20_000)


def test_webhooks_page_builds_the_alert_messages(app: ReflexProcess, page) -> None:
    """The Webhooks page shows a link's TradingView messages for what the builder chose; the
    message shown, filled as TradingView fills it, is accepted by the link's URL."""
    from datetime import UTC, datetime

    import httpx
    from playwright.sync_api import expect

    _register(page, app, "kiran")
    page.click("#bot-start")
    expect(page.locator("#bot-state")).to_have_text("RUNNING")
    page.click("#nav-webhooks")
    page.fill("#link-name", "NIFTY CALL/PUT")
    page.fill("#link-tsl", "0")  # every exit off: refused, and the message says what to do
    page.click("#link-save")
    expect(page.locator("#form-error")).to_contain_text(re.compile("every exit is off", re.I))
    page.fill("#link-sl", "20")
    page.click("#link-save")
    expect(page.locator("#links")).to_contain_text("NIFTY CALL/PUT")
    expect(page.locator("#links")).to_contain_text("SL 20% · target off · trail off")
    url = page.locator("[id^=url-]").first.inner_text()
    page.locator("[id^=reveal-]").first.click()
    link_id = page.locator("[id^=secret-]").first.get_attribute("id").split("-")[1]
    messages = page.locator(f"[id^=message-{link_id}-]")
    expect(messages).to_have_count(3)  # Buy CALL, Buy PUT, Exit
    expect(page.locator(f"#builder-{link_id}")).to_contain_text("Buy PUT")
    expect(messages.nth(0)).to_contain_text('"option": "CE"')
    expect(messages.nth(1)).to_contain_text('"option": "PE"')

    page.select_option("#builder-strike", "OTM2")
    page.select_option("#builder-expiry", "next")
    page.fill("#builder-lots", "2")
    expect(messages.nth(0)).to_contain_text('"strike": "OTM2"')
    expect(messages.nth(0)).to_contain_text('"lots": 2')
    expect(messages.nth(1)).to_contain_text('"expiry": "next"')
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.locator(f"#builder-{link_id}").scroll_into_view_if_needed()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"/webhooks overflows {overflow}px at {width}px wide"
        page.screenshot(path=str(SHOTS / f"webhook-messages-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1200, "height": 800})

    # The Buy PUT message as shown, filled as TradingView fills it, trades through the URL.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = messages.nth(1).inner_text().replace("{{timenow}}", stamp)
    resp = httpx.post(app.backend + url[url.index("/webhook/"):], content=body, timeout=10)
    assert resp.status_code == 202, resp.text

    page.fill("#builder-lots", "0")  # a bad choice: named, and no stale message to paste
    expect(page.locator(f"#builder-{link_id}")).to_contain_text("Lots must be between 1")
    expect(messages).to_have_count(0)
    page.fill("#builder-lots", "1")
    page.select_option("#builder-send", "strategy")
    expect(messages).to_have_count(1)
    expect(messages.first).to_contain_text("{{strategy.order.alert_message}}")
    page.locator(f"#builder-{link_id} summary").click()
    expect(page.locator(f"#pine-{link_id}")).to_contain_text("alert_message=put_fields")
    page.screenshot(path=str(SHOTS / "webhook-messages-strategy.png"), full_page=True)

    page.locator(f"#test-alert-{link_id}").click()  # sends the builder's first entry (CALL)
    expect(page.locator(f"#result-{link_id}")).to_contain_text("202")
    expect(page.locator(f"#result-{link_id}")).to_contain_text("accepted")
