"""What-if replay and reports end to end (issue 27): the simulator's candles through an
account's session, the cache, the CLI's JSON, the RQ job, applying a setting, report figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue, SimpleWorker
from SmartApi.smartExceptions import DataException
from sqlmodel import select

from ats_app import cli
from ats_app.engine.broker.errors import OrderRejected
from ats_app.engine.core.clock import IST
from ats_app.engine.core.errors import Conflict, NotFound
from ats_app.engine.reports import replay
from ats_app.engine.reports.replay_rules import Setting
from ats_app.engine.store import db
from ats_app.engine.store.models import (
    Alert,
    AuditEvent,
    CandleDay,
    Order,
    Position,
    ReplayRun,
    WebhookLink,
)
from ats_app.engine.tenants import accounts, users, webhooks
from tests.reflex_proc import ROOT
from tests.simulator.fixtures import _sdk_cwd_in_tmp, sim, sim_factory  # noqa: F401
from tests.simulator.sim_kit import API_KEY, CLIENT, PIN, SECRET, Sim

SBIN = ("3045", "SBIN-EQ", "NSE")
GRID = ["--sl", "0.2,0.5", "--target", "0.3,1", "--tsl", "0,0.15"]


def _weekdays(start: date, n: int) -> list[date]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def _candles(server: Sim, token: str, first: date, last: date) -> list[list[Any]]:
    for _ in range(5):  # logins are 1/s per client, and the CLI has just logged in
        try:
            sc = server.client()
            break
        except DataException:
            time.sleep(1.0)
    env = sc.getCandleData({"exchange": "NSE", "symboltoken": token, "interval": "ONE_MINUTE",
                            "fromdate": f"{first} 00:00", "todate": f"{last} 23:59"})
    return env["data"]


def _at(row: list[Any]) -> datetime:
    return datetime.fromisoformat(row[0])


def reference(trade: dict[str, Any], rows: list[list[Any]], sl: float, tg: float,
              tsl: float) -> tuple[str, float, str]:
    """The README's four rules, written again independently (floats) from the raw rows."""
    entry_t = datetime.fromisoformat(trade["entry_time"]).replace(second=0)
    exit_t = datetime.fromisoformat(trade["exit_time"]).replace(second=0)
    e = trade["entry_price"]
    stop = e * (1 - sl / 100) if sl else None
    target = e * (1 + tg / 100) if tg else None
    peak = None
    for r in rows:
        t = _at(r)
        if not entry_t < t < exit_t:
            continue
        o, h, lo = float(r[1]), float(r[2]), float(r[3])
        trail = peak * (1 - tsl / 100) if tsl and peak is not None else None
        levels = [(x, why) for x, why in ((stop, "stop_loss"), (trail, "trailing"))
                  if x is not None]
        active, why = max(levels, key=lambda lv: (lv[0], lv[1] == "stop_loss"),
                          default=(None, ""))
        if active is not None and o <= active:
            return t.isoformat(), o, why
        if target is not None and o >= target:
            return t.isoformat(), o, "target"
        if active is not None and lo <= active:
            return t.isoformat(), active, why
        if target is not None and h >= target:
            return t.isoformat(), target, "target"
        peak = h if peak is None else max(peak, h)
    return trade["exit_time"], trade["exit_price"], "signal"


def _tv_csv(rows: list[list[Any]], days: list[date]) -> tuple[str, list[dict[str, Any]]]:
    """15 long trades, one a day, entered and exited at candle closes (newest first)."""
    by_time = {_at(r): r for r in rows}
    lines = ["Trade #,Type,Signal,Date/Time,Price INR,Contracts,Profit INR,Profit %"]
    trades = []
    for n, d in reversed(list(enumerate(days, start=1))):
        t_in = datetime(d.year, d.month, d.day, 9, 30 + n, tzinfo=IST)
        t_out = t_in + timedelta(minutes=45 + 9 * n)
        p_in, p_out = by_time[t_in][4], by_time[t_out][4]
        lines.append(f"{n},Exit long,Close,{t_out:%Y-%m-%d %H:%M},{p_out},10,0,0")
        lines.append(f"{n},Entry long,Long,{t_in:%Y-%m-%d %H:%M},{p_in},10,,")
        trades.insert(0, {"entry_time": t_in.isoformat(), "entry_price": float(p_in),
                          "exit_time": t_out.isoformat(), "exit_price": float(p_out)})
    return "\n".join(lines) + "\n", trades


@pytest.fixture
def rig(database_url: str, redis_url: str, sim: Sim,  # noqa: F811
        tmp_path: Path) -> dict[str, Any]:
    with db.session_scope() as s:
        uid = users.create_user(s, "trader", "pw-Long-enough-1", "T", "R").id
        acct = accounts.add_account(s, uid, label="main", client_id=CLIENT, api_key=API_KEY,
                                    pin=PIN, totp_secret=SECRET, base_url=sim.base_url).id
    return {"uid": uid, "account": acct, "sim": sim, "tmp": tmp_path}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _calls(server: Sim) -> int:
    return server.control("GET", "/sim/health")["calls"].get("getCandleData", 0)


def test_tradingview_replay_matches_the_rules_and_a_second_run_is_free(
        rig: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    server: Sim = rig["sim"]
    days = _weekdays(date(2026, 11, 2), 15)
    rows = _candles(server, SBIN[0], days[0], days[-1])
    path = rig["tmp"] / "trades.csv"
    text, trades = _tv_csv(rows, days)
    path.write_text(text)
    argv = ["replay", "--user", "trader", "--trades", str(path), "--symbol", SBIN[1],
            "--exchange", "nse", *GRID, "--json"]
    as_tradingview = [*argv[:6], "SBIN", *argv[7:]]  # TradingView's name for SBIN-EQ
    before = _calls(server)
    first = _run(capsys, *argv)
    fetched = _calls(server) - before
    assert 1 <= fetched <= 2  # 15 trading days in at most two 20-day pages
    again = _run(capsys, *as_tradingview)
    assert _calls(server) - before == fetched  # the second run: zero broker calls
    assert again == first

    by_day: dict[str, list[list[Any]]] = {}  # the reference scans each trade's day only
    for row in rows:
        by_day.setdefault(row[0][:10], []).append(row)
    results = first["results"]
    assert [(r["sl"], r["target"], r["tsl"]) for r in results] == [
        (a, b, c) for a in (0.2, 0.5) for b in (0.3, 1.0) for c in (0.0, 0.15)]
    reasons = set()
    for r in results:
        assert set(r) == {"sl", "target", "tsl", "trades", "wins", "gross_pnl", "net_pnl",
                          "max_drawdown", "exits"}
        assert r["trades"] == len(r["exits"]) == 15
        times = [e["entry_time"] for e in r["exits"]]
        assert times == sorted(times)  # in the order of the trades
        for e, trade in zip(r["exits"], trades, strict=True):
            assert (e["entry_time"], e["entry_price"]) == (trade["entry_time"],
                                                           trade["entry_price"])
            t, price, why = reference(trade, by_day[trade["entry_time"][:10]], r["sl"],
                                      r["target"], r["tsl"])
            assert (e["exit_time"], e["reason"]) == (t, why)
            assert e["exit_price"] == pytest.approx(price, abs=1e-6)
            reasons.add(why)
        gross = sum((e["exit_price"] - e["entry_price"]) * 10 for e in r["exits"])
        assert r["gross_pnl"] == pytest.approx(gross, abs=0.01)
        assert r["net_pnl"] < r["gross_pnl"]  # charges on every order
    assert {"stop_loss", "target", "trailing", "signal"} <= reasons  # the grid exercises all


def test_refusals_are_named_and_change_nothing(
        rig: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    bad = rig["tmp"] / "bad.csv"
    bad.write_text("Trade #,Type,Signal,Date/Time,Price INR,Contracts\n"
                   "1,Exit long,Close,2026-11-02 10:00,100,1\n"
                   "1,Entry long,Long,yesterday,99,1\n")
    code = cli.main(["replay", "--user", "trader", "--trades", str(bad), "--symbol", SBIN[1],
                     "--exchange", "NSE", "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "row 3" in err and "Date/Time" in err
    code = cli.main(["replay", "--user", "trader", "--trades", str(bad), "--symbol", "NOPE-EQ",
                     "--exchange", "NSE", "--sl", "-1"])
    assert code == 1 and "sl" in capsys.readouterr().err
    with db.session_scope() as s:
        refused = s.exec(select(AuditEvent).where(AuditEvent.action == "cli.refused")).all()
        assert len(refused) == 2
        assert s.exec(select(ReplayRun)).all() == []


def _closed(s: Any, uid: int, link_id: int, acct: int, when: datetime, entry: int, out: int,
            reason: str, paper: bool = True, token: str = SBIN[0]) -> None:
    p = Position(user_id=uid, account_id=acct, link_id=link_id, exchange="NSE", symbol=SBIN[1],
                 symbol_token=token, quantity=10, entry_price_paise=entry, status="CLOSED",
                 exit_price_paise=out, exit_reason=reason, paper=paper,
                 realized_pnl_paise=(out - entry) * 10, opened_at=when,
                 closed_at=when + timedelta(minutes=40))
    s.add(p)
    s.flush()
    for side, price, tag in (("BUY", entry, "E"), ("SELL", out, "X")):
        s.add(Order(user_id=uid, account_id=acct, link_id=link_id, position_id=p.id,
                    client_order_id=f"{tag}{p.id}", purpose="ENTRY" if tag == "E" else "EXIT",
                    exchange="NSE", symbol=SBIN[1], symbol_token=token, side=side,
                    quantity=10, status="FILLED", filled_quantity=10,
                    average_price_paise=price, paper=paper))


def test_link_report_replay_job_and_apply(rig: dict[str, Any], redis_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    uid, acct = rig["uid"], rig["account"]
    with db.session_scope() as s:
        link, _ = webhooks.create_link(s, uid, name="sbin", accounts=[
            webhooks.LinkAccount(acct, 1)], strategy_id=None, stop_loss_pct="1",
            target_pct="2", trailing_stop_pct=None, paper=True)
        other = users.create_user(s, "other", "pw-Long-enough-2", "O", "T").id
        day = [datetime(2026, 11, d, 10, 0, tzinfo=IST) for d in (3, 4, 5)]
        _closed(s, uid, link.id, acct, day[0], 95000, 96000, "target")
        _closed(s, uid, link.id, acct, day[1], 95000, 94500, "stop_loss")
        _closed(s, uid, link.id, acct, day[2], 95000, 95800, "signal")
        _closed(s, uid, link.id, acct, day[2] + timedelta(hours=2), 95000, 94000, "signal",
                paper=False)

        # The strategy's own exits, after the stop and the target had closed two positions:
        # one with the price it carried, one without (its minute's candle then prices it).
        for n, (at, body) in enumerate([
                (day[0] - timedelta(seconds=30), {"action": "buy", "symbol": "SBIN"}),
                (day[0] + timedelta(minutes=70), {"action": "exit", "price": "951.5"}),
                (day[1] - timedelta(seconds=30), {"action": "buy", "symbol": "SBIN"}),
                (day[1] + timedelta(minutes=75, seconds=20), {"action": "exit"})]):
            s.add(Alert(user_id=uid, link_id=link.id, dedup_key=f"k{n}", action=body["action"],
                        payload=json.dumps(body), status="DONE", received_at=at))

    rep = _run(capsys, "report", "--user", "trader", "--link", str(link.id), "--json")
    paper, live = rep["paper"], rep["live"]
    assert (paper["trades"], paper["wins"], paper["losses"]) == (3, 2, 1)
    assert paper["gross_pnl"] == 100 - 50 + 80
    assert paper["charges"] > 0 and paper["net_pnl"] == pytest.approx(
        paper["gross_pnl"] - paper["charges"], abs=0.01)
    assert paper["exit_reasons"] == {"target": 1, "stop_loss": 1, "signal": 1}
    assert [d["day"] for d in paper["daily"]] == ["2026-11-03", "2026-11-04", "2026-11-05"]
    assert live["trades"] == 1 and live["gross_pnl"] == -100
    assert {r["mode"] for r in rep["links"]} == {"paper", "live"}
    dated = _run(capsys, "report", "--user", "trader", "--from", "04-11-2026", "--to",
                 "04-11-2026", "--json")
    assert dated["paper"]["trades"] == 1
    assert cli.main(["report", "--user", "other", "--link", str(link.id), "--json"]) == 1
    assert "not found" in capsys.readouterr().err

    out = _run(capsys, "replay", "--user", "trader", "--link", str(link.id), "--sl", "0.2,0",
               "--target", "0", "--tsl", "0", "--json")
    assert len(out["results"]) == 2 and out["results"][0]["trades"] == 4
    signals = out["results"][1]["exits"]  # every level off: each trade's own exit signal
    assert {e["reason"] for e in signals} == {"signal"}
    assert (signals[0]["exit_time"], signals[0]["exit_price"]) == (
        (day[0] + timedelta(minutes=70)).isoformat(), 951.5)
    minute = day[1] + timedelta(minutes=75)
    bars = _candles(rig["sim"], SBIN[0], minute.date(), minute.date())
    opening = next(float(r[1]) for r in bars if _at(r) == minute)
    assert (signals[1]["exit_time"], signals[1]["exit_price"]) == (
        (minute + timedelta(seconds=20)).isoformat(), opening)
    assert signals[2]["exit_price"] == 958.0  # closed on its signal: the real fill

    with db.session_scope() as s:
        trades = replay.link_trades(s, uid, link.id)
        run = replay.create_run(s, uid, source="link", label="sbin", link_id=link.id,
                                params={"sl": "0.2,0.5", "target": "0,1", "tsl": "0",
                                        "account_id": acct,
                                        "trades": replay.trades_to_json(trades)})
        run_id = run.id
    with db.session_scope() as s, pytest.raises(Conflict, match="still running"):
        replay.create_run(s, uid, source="link", label="again", link_id=link.id,
                          params={})  # one run at a time per user
    conn = redis.Redis.from_url(redis_url)
    replay.enqueue(run_id, conn)
    SimpleWorker([Queue("default", connection=conn)], connection=conn).work(burst=True)
    with db.session_scope() as s:
        done = s.get(ReplayRun, run_id)
        assert (done.status, done.progress) == ("DONE", 100), done.message
        result = json.loads(done.result)
        assert len(result["results"]) == 4 and result["actual"]["trades"] == 4
        # "actual" is what the positions really did, stops and target included
        assert [e["reason"] for e in result["actual"]["exits"]] == [
            "target", "stop_loss", "signal", "signal"]
        assert result["actual"]["gross_pnl"] == 100 - 50 + 80 - 100

        with pytest.raises(NotFound):
            replay.apply_setting(s, other, link.id, Setting(Decimal("0.5"), Decimal(1),
                                                            Decimal(0)))
    with db.session_scope() as s:
        replay.apply_setting(s, uid, link.id, Setting(Decimal("0.5"), Decimal(1), Decimal(0)))
    with db.session_scope() as s:
        row = s.get(WebhookLink, link.id)
        assert (row.stop_loss_pct, row.target_pct, row.trailing_stop_pct) == (0.5, 1.0, None)
        applied = s.exec(select(AuditEvent).where(AuditEvent.action == "replay.applied")).all()
        assert [a.user_id for a in applied] == [uid]


def test_a_standalone_replay_needs_no_running_system(
        sqlite_url: str, sim_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    """`replay --trades` with no user, no REDIS_URL and nothing else running: candles through
    the simulator's demo account, Redis a throwaway server of the command's own."""
    import os

    from ats_app.engine.store import db as store_db

    demo = sim_factory(accounts=[])  # demo mode: the account the dev install reads through
    store_db.upgrade(sqlite_url)
    path = tmp_path / "t.csv"
    path.write_text("Trade #,Type,Signal,Date/Time,Price INR,Contracts\n"
                    "1,Exit long,Close,2026-11-09 14:00,948.20,5\n"
                    "1,Entry long,Long,2026-11-09 09:45,950.00,5\n")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTHONSTARTUP")}
    env.update({"DATABASE_URL": sqlite_url, "ATS_DATA_DIR": str(tmp_path / "data"),
                "SIMULATOR_PORT": str(demo.server.port), "ATS_SIMULATOR": "true"})
    argv = [sys.executable, "-m", "ats_app.cli", "replay", "--trades", str(path), "--symbol",
            "SBIN-EQ", "--exchange", "NSE", "--sl", "0.2", "--target", "0.3,1", "--tsl", "0",
            "--json"]
    runs = [subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=120) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first == second and [len(r["exits"]) for r in first["results"]] == [1, 1]
    assert _calls(demo) == 1  # the second run read the cache
    assert not (tmp_path / "data" / "redis").exists()  # no server left behind in the data dir


class _Refusing:
    def candle_data(self, *args: object) -> list[list[object]]:
        raise OrderRejected("Symbol Not Found", broker_message="Symbol Not Found")


def test_a_refused_candle_request_leaves_trades_on_their_signal(session: Any) -> None:
    from ats_app.engine.reports.candles import load_days

    days = {date(2026, 11, 2), date(2026, 11, 3)}
    got = load_days(session, _Refusing(), "angel", "NFO", "999", days)
    assert got == {d: [] for d in days}
    assert session.exec(select(CandleDay)).all() == []  # nothing cached: asked again next time
