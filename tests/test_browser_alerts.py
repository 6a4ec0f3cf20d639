"""The Alerts page in real headless Chromium: one alert fanned out to three simulated
accounts, one of them held back by its own limit (set on the Accounts page), and the alert's
detail says so per account.

Runs the whole `reflex run` with tests/test_browser.py's fixtures (its own instance: the
first run builds the frontend, a couple of minutes on two cores).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from tests.reflex_proc import ROOT, ReflexProcess

# The same fixtures as the dashboard's own browser tests (a whole `reflex run` with
# MARKET_HOURS=always, Debian's Chromium); this module gets its own instance of each.
from tests.test_browser import SHOTS, app, page  # noqa: F401

pytestmark = pytest.mark.browser

LIMITED = "Sim B (limit 0)"
LABELS = ("Sim A", LIMITED, "Sim C")
# The world, written by the app's own engine functions in a process with the app's
# configuration (same database, same key): three simulated accounts on one paper link and the
# bot running. The second account's own limit is set through the Accounts page.
SETUP = f"""
import json
from ats_app.engine.core.config import settings
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.simulator.config import demo_account

demo = demo_account()
with session_scope() as s:
    uid = users.create_user(s, "priya", "correct-horse-1", "Priya", "Shah").id
    ids = [accounts.add_account(
        s, uid, label=label, client_id=demo.client_code, api_key="simulator", pin=demo.pin,
        totp_secret=demo.totp_secret, is_simulated=True,
        base_url=f"http://127.0.0.1:{{settings().simulator_port}}").id for label in {LABELS!r}]
    link, secret = webhooks.create_link(
        s, uid, name="Fan-out ORB", strategy_id=None, stop_loss_pct=20, target_pct=40,
        trailing_stop_pct=None, paper=True, accounts=[webhooks.LinkAccount(a, 1) for a in ids])
    bot.set_running(s, uid, True)
print(json.dumps({{"token": link.token, "secret": secret, "accounts": ids}}))
"""


def _shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The dialog fades in: a picture taken mid-way shows the page through it.
    pg.evaluate("() => Promise.all(document.getAnimations().map(a => a.finished))")
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _login(pg, proc: ReflexProcess, username: str, password: str, name: str) -> None:
    from playwright.sync_api import expect

    pg.set_viewport_size({"width": 1280, "height": 800})
    pg.goto(f"{proc.frontend}/login")
    pg.fill("#username", username)
    pg.fill("#password", password)
    pg.click("#login-submit")
    expect(pg.locator("#welcome")).to_contain_text(name)


def _world(proc: ReflexProcess) -> dict:
    out = subprocess.run([sys.executable, "-c", SETUP], env=proc.env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _send(proc: ReflexProcess, world: dict, **fields: object) -> int:
    body = {"secret": world["secret"], "symbol": "NIFTY", "option": "CE", "strike": "ATM",
            "lots": 1, **fields}
    resp = httpx.post(f"{proc.backend}/webhook/{world['token']}", content=json.dumps(body),
                      timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["alert_id"]


def _refresh_until(pg, alert_id: int, status: str) -> None:
    """The worker settles the alert within seconds: refresh the list until it shows."""
    row = pg.locator("#alerts tr", has=pg.locator(f"#details-{alert_id}"))
    for _ in range(40):
        pg.click("#alerts-refresh")
        if row.count() and status in row.inner_text():
            return
        pg.wait_for_timeout(750)
    raise AssertionError(f"alert {alert_id} not {status}: {row.all_inner_texts()}")


def _no_overflow(pg, where: str) -> None:
    """Nothing wider than the screen, and no cell of a table cut off at its right edge."""
    overflow = pg.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{where} overflows the page by {overflow}px"
    cut = pg.evaluate("""() => [...document.querySelectorAll('td')]
        .filter(td => td.offsetParent !== null)
        .filter(td => td.getBoundingClientRect().right > window.innerWidth + 1)
        .map(td => td.innerText)""")
    assert cut == [], f"{where}: cells past the screen's edge: {cut}"


def test_alert_detail_shows_every_account_and_why_one_did_not_trade(
        app: ReflexProcess, page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    world = _world(app)

    _login(page, app, "priya", "correct-horse-1", "Priya Shah")

    # The limit, set where a trader sets it: Sim B may hold no open position.
    page.click("#nav-accounts")
    limited_row = page.locator("#accounts tr", has_text=LIMITED)
    expect(limited_row).to_contain_text("holds 0 · your limits only")
    limited_row.get_by_role("button", name="Edit").click()
    # The edit form is mounted afresh with the account's values: wait for them before typing.
    expect(page.locator("#acc-label")).to_have_value(LIMITED)
    expect(page.locator("#acc-max_open_positions")).to_have_value("")
    page.fill("#acc-max_open_positions", "none at all")  # refused, named, nothing saved
    page.click("#acc-save")
    expect(page.get_by_text("Max open positions must be a whole number")).to_be_visible()
    expect(limited_row).to_contain_text("your limits only")
    page.fill("#acc-max_open_positions", "0")
    page.click("#acc-save")
    expect(limited_row).to_contain_text("holds 0 · max 0 open")
    for label in (LABELS[0], LABELS[2]):
        expect(page.locator("#accounts tr", has_text=label)).to_contain_text("your limits only")
    _shot(page, "accounts-limits-1280")

    buy = _send(app, world, action="buy", id="fan-1")

    page.click("#nav-alerts")
    expect(page).to_have_url(re.compile(r"/alerts/?$"))
    _refresh_until(page, buy, "DONE")
    row = page.locator("#alerts tr", has=page.locator(f"#details-{buy}"))
    expect(row).to_contain_text("Fan-out ORB")
    expect(row).to_contain_text("BUY NIFTY")
    expect(row).to_contain_text("2 ordered · 1 not traded")
    expect(row).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST"))
    expect(row).to_contain_text("account's max open positions reached")  # the alert's reason

    page.click(f"#details-{buy}")
    detail = page.locator("#alert-accounts")
    expect(detail).to_be_visible()
    expect(page.locator("#alert-detail")).to_contain_text(f"Alert #{buy}")
    limited = detail.locator("tr", has_text=LIMITED)
    expect(limited).to_contain_text("REFUSED")
    expect(limited).to_contain_text("account's max open positions reached")
    for label, account_id in ((LABELS[0], world["accounts"][0]),
                              (LABELS[2], world["accounts"][2])):
        traded = detail.locator("tr", has_text=label)
        expect(traded).to_contain_text("ORDERED")
        expect(traded).to_contain_text(f"A{buy}E{account_id}")  # the order's ordertag
        expect(traded).to_contain_text("FILLED")
        expect(traded).to_contain_text(re.compile(r"\d+ of \d+"))
        expect(traded).to_contain_text(re.compile(r"\d+\.\d\d"))  # the fill price, rupees
        expect(traded).to_contain_text(re.compile(r"\d[\d,]* ms"))  # latency from the alert
    _shot(page, "alerts-detail-1280")
    _no_overflow(page, "the detail at 1280px")
    page.click("#detail-close")
    expect(detail).not_to_be_visible()

    # An exit: the two open positions close; the limited account had none to exit.
    sell = _send(app, world, action="exit", id="fan-2")
    _refresh_until(page, sell, "DONE")
    _shot(page, "alerts-list-1280")
    _no_overflow(page, "the list at 1280px")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{app.frontend}/accounts")
    expect(page.locator("#accounts")).to_contain_text("max 0 open")
    _no_overflow(page, "the accounts at 390px")
    _shot(page, "accounts-limits-390")
    page.goto(f"{app.frontend}/alerts")
    _refresh_until(page, sell, "DONE")
    _no_overflow(page, "the list at 390px")
    _shot(page, "alerts-list-390")
    page.click(f"#details-{buy}")
    expect(detail.locator("tr", has_text=LIMITED)).to_contain_text(
        "account's max open positions reached")
    _no_overflow(page, "the detail at 390px")
    _shot(page, "alerts-detail-390")
    page.click("#detail-close")
    page.click(f"#details-{sell}")
    expect(detail.locator("tr", has_text=LIMITED)).to_contain_text("IGNORED")
    _shot(page, "alerts-detail-exit-390")


REFUSED_SETUP = """
import json
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import users, webhooks

with session_scope() as s:
    uid = users.create_user(s, "kiran", "correct-horse-2", "Kiran", "Rao").id
    out = {}
    for name in ("Morning ORB", "Swing PUT"):
        link, secret = webhooks.create_link(
            s, uid, name=name, strategy_id=None, stop_loss_pct=20, target_pct=40,
            trailing_stop_pct=None, paper=True, accounts=[])
        out[name] = {"token": link.token, "secret": secret}
    bot.set_running(s, uid, True)
print(json.dumps(out))
"""


def test_refused_alerts_show_why_and_their_body_without_the_secret(
        app: ReflexProcess, page) -> None:  # noqa: F811
    """A newcomer's alerts refused (a wrong secret, a field TradingView filled wrongly) are on
    the Alerts page with the reason in words and the body as sent, the secret masked: not in
    the page, nor in anything the backend sent the browser."""
    from datetime import datetime

    from playwright.sync_api import expect

    from ats_app.engine.core.clock import IST

    out = subprocess.run([sys.executable, "-c", REFUSED_SETUP], env=app.env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    links = json.loads(out.stdout.strip().splitlines()[-1])
    orb, swing = links["Morning ORB"], links["Swing PUT"]

    def post(link: dict, body: str) -> int:
        return httpx.post(f"{app.backend}/webhook/{link['token']}", content=body,
                          timeout=10).status_code

    # The old ready-made message on an index chart: 422, the real secret in the body.
    old = json.dumps({"secret": orb["secret"], "action": "buy", "symbol": "NSE:NIFTY",
                      "exchange": "NSE", "quantity": "1.0"})
    assert post(orb, old) == 422
    assert post(swing, json.dumps({"secret": "from-the-old-link", "action": "buy"})) == 401
    assert post(swing, json.dumps({"secret": swing["secret"], "action": "exit",
                                   "symbol": "NIFTY", "option": "PE"})) == 202  # nothing open

    received: list[str] = []  # everything the backend sends the browser (state deltas)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.append(str(f))))
    _login(page, app, "kiran", "correct-horse-2", "Kiran Rao")
    page.click("#nav-alerts")
    rows = page.locator("#alerts tbody tr")
    expect(rows).to_have_count(3)
    refused = page.locator("#alerts tr", has_text="Morning ORB")
    expect(refused).to_contain_text("REFUSED")
    expect(refused).to_contain_text("422 · a field was wrong")
    expect(refused).to_contain_text("BUY NSE:NIFTY")
    expect(page.locator("#alerts tr", has_text="from-the-old-link")).to_have_count(0)
    expect(page.locator("#alerts tr", has_text="401 · wrong or missing secret")).to_have_count(1)

    # Filters: status, link, and IST days typed day first (a bad one named).
    page.select_option("#filter-status", "REFUSED")
    page.click("#filter-apply")
    expect(rows).to_have_count(2)
    page.select_option("#filter-link_id", label="Swing PUT")
    page.click("#filter-apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("401")
    page.select_option("#filter-status", "")
    page.click("#filter-apply")
    expect(rows).to_have_count(2)  # the link's refusal and its ignored exit
    page.select_option("#filter-link_id", "")
    page.fill("#filter-date_from", "12/31/2026")
    page.click("#filter-apply")
    expect(page.locator("#filter-error")).to_contain_text("use dd-mm-yyyy")
    today = datetime.now(IST).strftime("%d-%m-%Y")
    page.fill("#filter-date_from", today)
    page.fill("#filter-date_to", today)
    page.click("#filter-apply")
    expect(page.locator("#filter-error")).to_have_count(0)
    expect(rows).to_have_count(3)
    _shot(page, "alerts-refused-1280")
    _no_overflow(page, "the refused list at 1280px")

    refused.get_by_role("button", name="Details").click()
    body = page.locator("#detail-body")
    expect(body).to_contain_text('"secret": "•••"')
    expect(body).to_contain_text('"symbol": "NSE:NIFTY"')
    expect(page.locator("#alert-detail")).to_contain_text("Refused alert")
    expect(page.locator("#detail-reason")).to_contain_text("a field was wrong")
    _shot(page, "alerts-refused-detail-1280")
    page.click("#detail-close")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(rows).to_have_count(3)
    expect(page.locator("#filter-date_from")).to_have_value(today)  # the filter in force
    _no_overflow(page, "the refused list at 390px")
    _shot(page, "alerts-refused-390")
    page.locator("#alerts tr", has_text="Morning ORB").get_by_role(
        "button", name="Details").click()
    expect(body).to_contain_text("•••")
    _no_overflow(page, "the refused detail at 390px")
    _shot(page, "alerts-refused-detail-390")

    html = page.content()
    frames = "\n".join(received)
    page.click("#detail-close")

    # The Profile page's Telegram card, on a server without a bot token: it says so.
    page.click("#nav-profile")
    expect(page.locator("#tg-linked")).to_contain_text("No chat linked")
    expect(page.locator("#tg-off")).to_contain_text("TELEGRAM_BOT_TOKEN")
    expect(page.locator("#tg-code-button")).to_have_count(0)
    _no_overflow(page, "the profile at 390px")
    _shot(page, "profile-telegram-390")
    # The frames are the state's deltas: the masked body came through them.
    assert "•••" in frames or "\\u2022\\u2022\\u2022" in frames, "no state frames seen"
    for secret in (orb["secret"], swing["secret"], "from-the-old-link"):
        assert secret not in html, "a secret reached the page"
        assert secret not in frames, "a secret reached the browser's state"
