"""The Reports and Replay pages in headless Chromium (issue 27): figures and charts drawn
(recharts' svg), a replay run as a job with its progress, the grid, heat map and equity
curves, "apply to link", and a TradingView export uploaded and replayed. Desktop and phone.

Runs the whole `reflex run` with tests/test_browser.py's fixtures (its own instance).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reflex_proc import ROOT, ReflexProcess
from tests.test_browser import SHOTS, app, page  # noqa: F401
from tests.test_browser_layout import _no_overflow  # screen edge, cut cells, clipping boxes

pytestmark = pytest.mark.browser

SETUP = """
import json
from datetime import datetime, timedelta
from ats_app.engine.core.clock import IST
from ats_app.engine.core.config import settings
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order, Position
from ats_app.engine.tenants import accounts, users, webhooks
from ats_app.simulator.config import demo_account

demo = demo_account()
with session_scope() as s:
    uid = users.create_user(s, "meera", "correct-horse-2", "Meera", "Rao").id
    acct = accounts.add_account(
        s, uid, label="Sim", client_id=demo.client_code, api_key="simulator", pin=demo.pin,
        totp_secret=demo.totp_secret, is_simulated=True,
        base_url=f"http://127.0.0.1:{settings().simulator_port}").id
    link, _ = webhooks.create_link(
        s, uid, name="SBIN ORB", strategy_id=None, stop_loss_pct=1, target_pct=2,
        trailing_stop_pct=None, paper=True, accounts=[webhooks.LinkAccount(acct, 1)])
    for n, (day, entry, out, why) in enumerate([(2, 95000, 95600, "target"),
                                                (3, 95000, 94400, "stop_loss"),
                                                (4, 95000, 95300, "signal"),
                                                (5, 95000, 94800, "signal")]):
        at = datetime(2026, 11, day, 10, 5, tzinfo=IST)
        p = Position(user_id=uid, account_id=acct, link_id=link.id, exchange="NSE",
                     symbol="SBIN-EQ", symbol_token="3045", quantity=10,
                     entry_price_paise=entry, status="CLOSED", exit_price_paise=out,
                     exit_reason=why, paper=True, realized_pnl_paise=(out - entry) * 10,
                     opened_at=at, closed_at=at + timedelta(minutes=95))
        s.add(p)
        s.flush()
        for side, price, tag in (("BUY", entry, "E"), ("SELL", out, "X")):
            s.add(Order(user_id=uid, account_id=acct, link_id=link.id, position_id=p.id,
                        client_order_id=f"R{tag}{p.id}", exchange="NSE", symbol="SBIN-EQ",
                        symbol_token="3045", side=side, quantity=10, status="FILLED",
                        filled_quantity=10, average_price_paise=price, paper=True))
print(json.dumps({"link": link.id}))
"""

CSV = """Trade #,Type,Signal,Date/Time,Price INR,Contracts,Profit INR,Profit %
2,Exit long,Close,2026-11-10 13:30,951.10,5,0,0
2,Entry long,Long,2026-11-10 10:15,950.00,5,,
1,Exit long,Close,2026-11-09 14:00,948.20,5,0,0
1,Entry long,Long,2026-11-09 09:45,950.00,5,,
"""


def _shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # allSettled: a toast leaving cancels its animation, whose promise then rejects
    pg.evaluate("() => Promise.allSettled(document.getAnimations().map(a => a.finished))")
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _phone(pg) -> None:
    pg.set_viewport_size({"width": 390, "height": 844})
    pg.wait_for_timeout(500)  # recharts re-measures its container after a resize


def _svg_drawn(pg, box: str) -> None:
    from playwright.sync_api import expect

    expect(pg.locator(f"#{box} .recharts-wrapper > svg.recharts-surface")).to_have_count(1)
    drawn = pg.locator(f"#{box} .recharts-line-curve, #{box} .recharts-bar-rectangle")
    expect(drawn.first).to_be_attached()




def test_reports_and_replay_pages(app: ReflexProcess, page, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    out = subprocess.run([sys.executable, "-c", SETUP], env=app.env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    link = json.loads(out.stdout.strip().splitlines()[-1])["link"]

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{app.frontend}/login")
    page.fill("#username", "meera")
    page.fill("#password", "correct-horse-2")
    page.click("#login-submit")
    expect(page.locator("#welcome")).to_contain_text("Meera Rao")

    page.click("#nav-reports")
    expect(page.locator("#stat-trades")).to_have_text("4")
    expect(page.locator("#stat-win_rate")).to_have_text("50.0 %")
    for box in ("report-equity", "report-daily", "report-reasons"):
        _svg_drawn(page, box)
    expect(page.locator("#report-links")).to_contain_text("SBIN ORB")
    page.fill("#report-from", "31-11-2026")  # no such day: named, figures left as they were
    page.click("#report-apply")
    expect(page.locator("#report-error")).to_contain_text("is not a date")
    expect(page.locator("#stat-trades")).to_have_text("4")
    page.fill("#report-from", "04-11-2026")
    page.click("#report-apply")
    expect(page.locator("#stat-trades")).to_have_text("2")
    _no_overflow(page, "/reports at 1280px")
    _shot(page, "reports-1280")
    _phone(page)
    _no_overflow(page, "/reports at 390px")
    _shot(page, "reports-390")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("#nav-replay")
    page.locator("#replay-source").click()
    page.get_by_role("option", name=f"Link: SBIN ORB (#{link})").click()
    page.fill("#replay-sl", "0.2,0.5")
    page.fill("#replay-target", "0.3,1")
    page.fill("#replay-tsl", "0,0.15")
    page.click("#replay-start")
    expect(page.locator("#replay-status")).to_contain_text("Run #1: DONE", timeout=90_000)
    expect(page.locator("#replay-grid tbody tr")).to_have_count(8)
    _svg_drawn(page, "replay-equity")
    expect(page.locator("#replay-heat tbody tr")).to_have_count(2)  # SL 0.2 and 0.5
    nets = [float(t.replace(",", "")) for t in
            page.locator("#replay-grid tbody tr td:nth-child(4)").all_inner_texts()]
    assert nets == sorted(nets, reverse=True)  # best net P&L first
    _no_overflow(page, "/replay at 1280px")
    _shot(page, "replay-link-1280")
    best = page.locator("#replay-grid tbody tr").first
    best.get_by_role("button", name="Apply to link").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("open positions keep their own")
    page.click("#apply-setting-cancel")  # asked first: nothing changes on a cancel
    expect(page.locator("#replay-message")).to_have_count(0)
    best.get_by_role("button", name="Apply to link").click()
    page.click("#apply-setting-ok")
    expect(page.locator("#replay-message")).to_contain_text(f"Link #{link} now trades")

    _phone(page)
    _no_overflow(page, "/replay at 390px")
    _shot(page, "replay-link-390")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#replay-source").click()
    page.get_by_role("option", name="TradingView export (CSV)").click()
    csv = tmp_path / "List of trades.csv"
    csv.write_text(CSV)
    expect(page.locator("#tv_csv")).to_contain_text("Drop the Strategy Tester")
    page.wait_for_load_state("networkidle")
    with page.expect_file_chooser() as chooser:  # a click on the zone still opens the dialog
        page.locator("#tv_csv").click()
    assert not chooser.value.is_multiple()
    page.locator("#tv_csv input[type=file]").set_input_files(str(csv))
    expect(page.locator("#tv_csv")).to_contain_text("Loaded: List of trades.csv")
    page.fill("#replay-symbol", "SBIN-EQ")
    page.fill("#replay-exchange", "NSE")
    page.fill("#replay-tsl", "0")
    page.click("#replay-start")
    expect(page.locator("#replay-status")).to_contain_text("Run #2: DONE", timeout=90_000)
    expect(page.locator("#replay-grid tbody tr")).to_have_count(4)
    expect(page.locator("#replay-grid")).not_to_contain_text("Apply to link")
    _svg_drawn(page, "replay-equity")
    _no_overflow(page, "/replay (TradingView) at 1280px")
    _shot(page, "replay-tradingview-1280")
    _phone(page)
    _no_overflow(page, "/replay (TradingView) at 390px")
    _shot(page, "replay-tradingview-390")
