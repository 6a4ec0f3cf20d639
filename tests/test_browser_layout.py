"""The dashboard as a trader in India reads it, in real headless Chromium: started on the
ports FRONTEND_PORT / BACKEND_PORT name, every time in IST with the zone named, date filters
day first, and on a 390 px phone the positions and orders as cards with symbol, P&L, status
and the exit button on screen.

Runs the whole `reflex run` with its own instance of tests/test_browser.py's page fixture
(the first run builds the frontend, a couple of minutes on two cores).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ats_app.engine.core.clock import IST
from tests.conftest import require_or_skip
from tests.reflex_proc import ROOT, ReflexProcess
from tests.test_browser import CHROMIUM, SHOTS, page  # noqa: F401

pytestmark = pytest.mark.browser

SHOWN_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST")
RAW_TIME = re.compile(r"T\d\d:\d\d:\d\d\.\d{6}|\+00:00")
PHONE = {"width": 390, "height": 844}
# Every page, and what shows once its data has arrived.
ROUTES = {"/": "#open-positions", "/accounts": "#accounts", "/strategies": "#nav-overview",
          "/webhooks": "#links", "/orders": "#orders", "/positions": "#positions",
          "/alerts": "#alerts", "/audit": "#audit", "/profile": "#profile-name",
          "/reports": "#report-links", "/replay": "#replay-start"}

# A paper link on a simulated account with the bot running, made by the app's own engine in
# a process with the app's configuration.
SETUP = """
import json
from ats_app.engine.core.config import settings
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.simulator.config import demo_account

demo = demo_account()
with session_scope() as s:
    uid = users.create_user(s, "kavya", "correct-horse-1", "Kavya", "Nair").id
    acc = accounts.add_account(
        s, uid, label="Sim", client_id=demo.client_code, api_key="simulator", pin=demo.pin,
        totp_secret=demo.totp_secret, is_simulated=True,
        base_url=f"http://127.0.0.1:{settings().simulator_port}").id
    links = {}
    for name in ("Open ORB", "Closed ORB"):
        link, secret = webhooks.create_link(
            s, uid, name=name, strategy_id=None, stop_loss_pct=20, target_pct=40,
            trailing_stop_pct=None, paper=True, accounts=[webhooks.LinkAccount(acc, 1)],
            broker_stop=name == "Open ORB")  # its stop also rests in the (paper) book
        links[name] = {"token": link.token, "secret": secret}
    bot.set_running(s, uid, True)
print(json.dumps(links))
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReflexProcess]:
    """The whole stack on the ports an operator sets: FRONTEND_PORT / BACKEND_PORT only."""
    require_or_skip(Path(CHROMIUM).exists(), "Debian chromium at /usr/bin/chromium")
    proc = ReflexProcess(tmp_path_factory.mktemp("layout") / "data", backend_only=False,
                         env={"MARKET_HOURS": "always"}, ports_by_env=True)
    proc.start(timeout=600)  # waits for /ping on BACKEND_PORT and /login on FRONTEND_PORT
    yield proc
    proc.stop()


def _shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.evaluate("() => Promise.all(document.getAnimations().map(a => a.finished))")
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _send(app: ReflexProcess, link: dict, action: str, alert_id: str) -> None:
    body = {"secret": link["secret"], "action": action, "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "lots": 1, "id": alert_id}
    resp = httpx.post(f"{app.backend}/webhook/{link['token']}", content=json.dumps(body),
                      timeout=10)
    assert resp.status_code == 202, resp.text


def _refresh_until(pg, button: str, table: str, text: str, count: int = 1) -> None:
    """The worker settles alerts within seconds: refresh until `text` shows `count` times."""
    for _ in range(40):
        pg.click(button)
        if pg.locator(table).count() and pg.locator(table).inner_text().count(text) >= count:
            return
        pg.wait_for_timeout(750)
    raise AssertionError(f"{table} never showed {text} x{count}")


def _no_overflow(pg, where: str) -> None:
    """Nothing wider than the screen, and no table cell cut off at its right edge."""
    overflow = pg.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{where} overflows the page by {overflow}px"
    cut = pg.evaluate("""() => [...document.querySelectorAll('td')]
        .filter(td => td.offsetParent !== null)
        .filter(td => td.getBoundingClientRect().right > window.innerWidth + 1)
        .map(td => td.innerText)""")
    assert cut == [], f"{where}: cells past the screen's edge: {cut}"
    # Nor any box that hides part of its content sideways (a table scrolling in its box, a
    # card clipping a button): what is cut off there is as unseen as past the screen's edge.
    clipped = pg.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(el => el.offsetParent !== null && el.clientWidth > 0)
        .filter(el => ['auto', 'scroll', 'hidden', 'clip']
                        .includes(getComputedStyle(el).overflowX))
        .filter(el => el.scrollWidth > el.clientWidth + 1)
        .map(el => `${el.tagName}#${el.id}.${el.className}: ${el.innerText.slice(0, 60)}`)""")
    assert clipped == [], f"{where}: content cut off sideways: {clipped}"


def _on_screen(pg, locator, what: str) -> None:
    """Wholly inside the 390x844 viewport as the page opens: no scrolling, either way."""
    box = locator.bounding_box()
    assert box is not None, f"{what} is not shown"
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, (what, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (what, box)


def test_ports_ist_times_and_phone_cards(app: ReflexProcess, page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    # Started without --frontend-port/--backend-port: both answer on the ports the env named.
    assert "-port" not in " ".join(app.proc.args)  # type: ignore[union-attr]
    assert httpx.get(f"{app.backend}/ping", timeout=5).status_code == 200
    assert httpx.get(f"{app.frontend}/login", timeout=10).status_code == 200

    out = subprocess.run([sys.executable, "-c", SETUP], env=app.env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    links = json.loads(out.stdout.strip().splitlines()[-1])
    _send(app, links["Closed ORB"], "buy", "c-1")
    _send(app, links["Open ORB"], "buy", "o-1")

    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{app.frontend}/login")
    page.fill("#username", "kavya")
    page.fill("#password", "correct-horse-1")
    page.click("#login-submit")  # the page's websocket reaches the backend on BACKEND_PORT
    expect(page.locator("#welcome")).to_contain_text("Kavya Nair")

    page.click("#nav-webhooks")  # the URL to paste into TradingView names BACKEND_PORT
    expect(page.locator("[id^=url-]").first).to_contain_text(
        f"http://localhost:{app.backend_port}/webhook/")

    page.click("#nav-positions")
    _refresh_until(page, "text=Refresh", "#positions", "OPEN", 2)
    _send(app, links["Closed ORB"], "exit", "c-2")
    _refresh_until(page, "text=Refresh", "#positions", "CLOSED")
    positions = page.locator("#positions")
    expect(positions).to_contain_text(SHOWN_TIME)
    assert not RAW_TIME.search(positions.inner_text())
    _refresh_until(page, "text=Refresh", "#positions", "at broker")  # Open ORB's resting stop
    _no_overflow(page, "/positions at 1280px")
    _shot(page, "layout-positions-1280")

    page.click("#nav-orders")
    _refresh_until(page, "#filter-apply", "#orders", "FILLED", 3)
    orders = page.locator("#orders")
    expect(orders).to_contain_text(SHOWN_TIME)
    assert not RAW_TIME.search(orders.inner_text()), orders.inner_text()
    # Date filters are typed day first; a US-style date is refused by name, not ignored.
    today = datetime.now(IST).date()
    expect(page.locator("#filter-date_from")).to_have_attribute("placeholder", re.compile(
        "dd-mm-yyyy"))
    page.fill("#filter-date_from", (today + timedelta(days=1)).strftime("%d-%m-%Y"))
    page.click("#filter-apply")
    expect(page.locator("#orders-count")).to_have_text("No orders")
    page.fill("#filter-date_from", "12/31/2026")
    page.click("#filter-apply")
    expect(page.locator("#filter-error")).to_contain_text("is not a date: use dd-mm-yyyy")
    expect(page.locator("#orders-count")).to_have_text("No orders")  # the last good filter
    page.fill("#filter-date_from", today.strftime("%d-%m-%Y"))
    page.fill("#filter-date_to", today.strftime("%d-%m-%Y"))
    page.click("#filter-apply")
    # two entries, one exit, and Open ORB's stop resting at the broker
    expect(page.locator("#orders-count")).to_have_text("1–4 of 4")
    expect(page.locator("#filter-error")).to_have_count(0)
    _no_overflow(page, "/orders at 1280px")
    _shot(page, "layout-orders-1280")

    page.click("#nav-audit")
    expect(page.locator("#audit")).to_contain_text(SHOWN_TIME)
    page.fill("#audit-day", today.strftime("%d-%m-%Y"))
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit")).to_contain_text("alert.received")
    page.click("#nav-alerts")
    expect(page.locator("#alerts")).to_contain_text(SHOWN_TIME)

    # Every page fits a laptop and a phone whole; on the phone a position's card opens with
    # symbol, P&L, status and its exit button, all on screen.
    for size in ({"width": 1280, "height": 800}, PHONE):
        page.set_viewport_size(size)
        for route, shown in ROUTES.items():
            page.goto(f"{app.frontend}{route}")
            expect(page.locator(shown)).to_be_visible()  # its rows loaded, not an empty page
            page.wait_for_load_state("networkidle")
            _no_overflow(page, f"{route} at {size['width']}px")

    page.goto(f"{app.frontend}/positions")
    card = page.locator("#positions tr", has=page.locator("[id^=exit-]"))
    expect(card).to_have_count(1)
    for label, cell in (("symbol", card.locator("td[data-label='Symbol']")),
                        ("P&L", card.locator("td[data-label='P&L ₹']")),
                        ("status", card.locator("td[data-label='Status']")),
                        ("exit button", card.locator("[id^=exit-]"))):
        _on_screen(page, cell, f"/positions at 390px: the open position's {label}")
    # ... before the rest of the card: the button does not wait below entry, stop and target.
    assert (card.locator("[id^=exit-]").bounding_box()["y"]  # type: ignore[index]
            < card.locator("td[data-label='Qty']").bounding_box()["y"])  # type: ignore[index]
    expect(card.locator("td[data-label='Status']")).to_contain_text("OPEN")
    expect(card.locator("td[data-label='Opened']")).to_contain_text(SHOWN_TIME)
    _shot(page, "layout-positions-390")

    page.goto(f"{app.frontend}/orders")
    first = page.locator("#orders tbody tr").first
    expect(first).to_contain_text(SHOWN_TIME)
    for label in ("Symbol", "Status"):
        _on_screen(page, first.locator(f"td[data-label='{label}']"), f"/orders 390px: {label}")
    _shot(page, "layout-orders-390")

    page.goto(f"{app.frontend}/")
    open_card = page.locator("#open-positions tbody tr").first
    expect(open_card.locator("td[data-label='Status']")).to_contain_text("OPEN")
    for label in ("Symbol", "P&L ₹", "Status"):
        cell = open_card.locator(f"td[data-label='{label}']")
        cell.scroll_into_view_if_needed()
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, label
    _shot(page, "layout-overview-390")
    page.goto(f"{app.frontend}/audit")
    expect(page.locator("#audit")).to_contain_text(SHOWN_TIME)
    _shot(page, "layout-audit-390")

    # The exit button on the phone card works: asks first, then queues the sell.
    page.goto(f"{app.frontend}/positions")
    page.locator("#positions [id^=exit-]").click()
    page.click("#exit-position-ok")
    expect(page.get_by_text("Exit order queued.")).to_be_visible()
    _refresh_until(page, "text=Refresh", "#positions", "CLOSED", 2)
    _shot(page, "layout-positions-closed-390")
