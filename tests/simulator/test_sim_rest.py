"""SmartAPI REST behaviour, observed only through the official SDK's SmartConnect."""

from __future__ import annotations

import math
import time

import pyotp
import pytest
from sim_kit import CLIENT, PIN, SECRET, OrderFeed, Sim, order, wait_for
from SmartApi import SmartConnect
from SmartApi.smartExceptions import DataException

from ats_app.simulator.config import AccountSpec


def _book(sc: SmartConnect) -> list[dict]:
    # The order book is limited to 1 request/s, like Angel's.
    time.sleep(1.05)
    return sc.orderBook()["data"] or []


def test_login_with_real_totp_and_wrong_credentials(sim_factory) -> None:
    accounts = [AccountSpec(CLIENT, PIN, SECRET), AccountSpec("T2", "1111", SECRET),
                AccountSpec("T3", "2222", SECRET)]
    sim: Sim = sim_factory(accounts=accounts)
    sc = sim.client()
    assert sc.userId == CLIENT and sc.access_token.count(".") == 2
    assert sc.getProfile(sc.refresh_token)["data"]["clientcode"] == CLIENT

    bad = SmartConnect(api_key="k", root=sim.base_url)
    wrong_totp = f"{(int(pyotp.TOTP(SECRET).now()) + 500_000) % 1_000_000:06d}"
    r = bad.generateSession("T2", "1111", wrong_totp)
    assert (r["status"], r["errorcode"]) == (False, "AB1050")
    r = bad.generateSession("T3", "9999", pyotp.TOTP(SECRET).now())
    assert (r["status"], r["errorcode"]) == (False, "AB1000")
    assert bad.access_token is None


def test_order_with_ordertag_is_in_book_tradebook_positions(sim: Sim) -> None:
    sc = sim.client()
    ask = sim.control("GET", "/sim/quote/3045")["ask"]
    sim.control("POST", "/sim/price", {"token": "3045", "ltp": ask})  # hold the touch still
    r = sc.placeOrderFullResponse(order(ordertag="strat-42"))
    assert r["status"] is True and r["data"]["orderid"]
    oid = r["data"]["orderid"]
    book = _book(sc)
    row = next(o for o in book if o["orderid"] == oid)
    assert row["ordertag"] == "strat-42" and row["status"] == "complete"
    assert row["filledshares"] == "10" and row["averageprice"] > ask  # bought at the ask
    details = sc.individual_order_details(r["data"]["uniqueorderid"])
    assert details["data"]["orderid"] == oid
    trades = sc.tradeBook()["data"]
    assert trades[0]["orderid"] == oid and trades[0]["fillsize"] == "10"
    time.sleep(1.05)
    pos = sc.position()["data"]
    assert pos[0]["symboltoken"] == "3045" and pos[0]["netqty"] == "10"
    rms = sc.rmsLimit()["data"]
    assert float(rms["availablecash"]) == pytest.approx(1_000_000 - 10 * row["averageprice"])


def test_empty_order_book_is_null_like_angel(sim: Sim) -> None:
    assert sim.client().orderBook()["data"] is None


def test_ordertag_over_20_chars_is_AB4008(sim: Sim) -> None:
    r = sim.client().placeOrderFullResponse(order(ordertag="x" * 21))
    assert (r["status"], r["errorcode"]) == (False, "AB4008")


def test_bad_fields_are_refused(sim: Sim) -> None:
    sc = sim.client()
    assert sc.placeOrderFullResponse(order(variety="WEIRD"))["errorcode"] == "AB1008"
    assert sc.placeOrderFullResponse(order(symboltoken="1"))["errorcode"] == "AB1009"
    assert sc.placeOrderFullResponse(order(producttype="X"))["errorcode"] == "AB1012"
    assert sc.placeOrderFullResponse(order(ordertype="LIMIT", price="0"))["status"] is False


def test_accepted_then_rejected_for_insufficient_margin(sim: Sim) -> None:
    sc = sim.client()
    updates = OrderFeed(sim, sc).start()
    try:
        sim.control("POST", "/sim/accounts", {"clientcode": CLIENT, "cash": 100.0})
        r = sc.placeOrderFullResponse(order())
        assert r["status"] is True  # "success" is not a fill
        oid = r["data"]["orderid"]
        assert wait_for(lambda: any('"AB03"' in m and oid in m for m in updates.messages))
        row = next(o for o in _book(sc) if o["orderid"] == oid)
        assert row["status"] == "rejected" and "Insufficient Funds" in row["text"]
        assert '"AB00"' in updates.messages[0]  # Angel's connected message comes first
    finally:
        updates.close()


def test_order_update_socket_reports_lifecycle(sim: Sim) -> None:
    sc = sim.client()
    updates = OrderFeed(sim, sc).start()
    try:
        q = sim.control("GET", "/sim/quote/3045")
        sim.control("POST", "/sim/price", {"token": "3045", "ltp": q["ltp"]})
        far = round(q["bid"] * 0.9, 1)
        oid = sc.placeOrder(order(ordertype="LIMIT", price=str(far)))
        assert wait_for(lambda: any('"AB01"' in m and oid in m for m in updates.messages))
        sl = sc.placeOrder(order(variety="STOPLOSS", ordertype="STOPLOSS_LIMIT",
                                 price=str(q["ask"] + 1), triggerprice=str(q["ask"] + 0.5)))
        assert wait_for(lambda: any('"AB10"' in m and sl in m for m in updates.messages))
        assert sc.cancelOrder(oid, "NORMAL")["status"] is True
        assert wait_for(lambda: any('"AB02"' in m and oid in m for m in updates.messages))
        sim.control("POST", "/sim/price", {"token": "3045", "ltp": q["ask"] + 0.6})
        assert wait_for(lambda: any('"AB05"' in m and sl in m for m in updates.messages))
    finally:
        updates.close()


def test_limit_order_rests_then_fills_when_crossed_by_modify(sim: Sim) -> None:
    sc = sim.client()
    sim.control("POST", "/sim/price", {"token": "3045", "ltp": 950.0})
    oid = sc.placeOrder(order(ordertype="LIMIT", price="900"))
    assert [o["status"] for o in _book(sc) if o["orderid"] == oid] == ["open"]
    assert sc.modifyOrder({"orderid": oid, "variety": "NORMAL", "price": "960",
                           "ordertype": "LIMIT", "quantity": "10"})["status"] is True
    row = next(o for o in _book(sc) if o["orderid"] == oid)
    assert row["status"] == "complete" and row["averageprice"] <= 960
    assert sc.cancelOrder(oid, "NORMAL")["status"] is False  # too late to cancel


def test_lot_size_and_market_hours_rejections(sim_factory) -> None:
    sim: Sim = sim_factory(nse_hours=True)
    sim.control("POST", "/sim/clock", {"at": "2026-11-25T16:00:00+05:30"})  # after close
    sc = sim.client()
    updates = OrderFeed(sim, sc).start()
    try:
        closed = sc.placeOrder(order())
        amo = sc.placeOrder(order(variety="AMO"))
        # The engine's risk check has run on both while the clock still says 16:00:
        # AB03 rejected (market closed), AB06 after-market order received. (str(): the
        # SDK hands a heartbeat pong to on_message as bytes.)
        assert wait_for(lambda: any('"AB03"' in str(m) and closed in str(m)
                                    for m in updates.messages)
                        and any('"AB06"' in str(m) and amo in str(m)
                                for m in updates.messages), timeout=15)
    finally:
        updates.close()
    sim.control("POST", "/sim/clock", {"at": "2026-11-25T10:00:00+05:30"})
    symbol, token = sim.nifty_option()
    odd = sc.placeOrder(order(tradingsymbol=symbol, symboltoken=token,
                              exchange="NFO", producttype="CARRYFORWARD", quantity="10"))
    book = {o["orderid"]: o for o in _book(sc)}
    assert book[closed]["status"] == "rejected" and "market is closed" in book[closed]["text"]
    assert book[amo]["status"] == "complete"  # the AMO went in once the market opened
    assert book[odd]["status"] == "rejected" and "lot size 65" in book[odd]["text"]


def test_expired_token_is_AG8001_and_generate_token_recovers(sim: Sim) -> None:
    sc = sim.client()
    sim.control("POST", "/sim/expire", {"clientcode": CLIENT})
    r = sc.getProfile(sc.refresh_token)
    assert r["errorCode"] == "AG8001" and r["success"] is False
    old = sc.access_token
    assert sc.generateToken(sc.refresh_token)["status"] is True
    assert sc.access_token != old
    assert sc.getProfile(sc.refresh_token)["data"]["clientcode"] == CLIENT
    with pytest.raises(TypeError):  # the SDK indexes data=None of Angel's AB8050 answer
        sc.generateToken("not-a-token")
    sc.terminateSession(CLIENT)
    assert sc.getProfile(sc.refresh_token)["errorCode"] == "AG8001"


def test_order_rate_limit_403_plain_text(sim_factory) -> None:
    # Angel's 20/s and 1/s counts over 60 s windows, so a slow machine cannot let a window
    # slide open mid-burst; the counting and the refusal are the same code either way.
    sim: Sim = sim_factory(order_limits=((20, 60.0),), book_limits=((1, 60.0),))
    sc = sim.client()
    ok, refused = 0, []
    for _ in range(25):
        try:
            ok += sc.placeOrderFullResponse(order())["status"] is True
        except DataException as exc:
            refused.append(str(exc))
    assert ok == 20 and len(refused) == 5
    assert "exceeding access rate" in refused[0] and "parse the JSON" in refused[0]
    sc.orderBook()
    with pytest.raises(DataException, match="exceeding access rate"):
        sc.orderBook()  # 1 per window on the order book


def test_static_ip_check_on_orders_only(sim_factory) -> None:
    sim: Sim = sim_factory(accounts=[AccountSpec(CLIENT, PIN, SECRET, static_ip="10.9.9.9"),
                                     AccountSpec("T5", PIN, SECRET, static_ip="127.0.0.1")])
    sc = sim.client()
    with pytest.raises(DataException, match=r"response received from the server: b''"):
        sc.placeOrderFullResponse(order())
    assert sc.ltpData("NSE", "SBIN-EQ", "3045")["status"] is True  # reads still work
    time.sleep(1.05)  # login limit is per client, but keep the run order-independent
    assert sim.client("T5").placeOrderFullResponse(order())["status"] is True


def test_market_data_ltp_quote_search_candles(sim: Sim) -> None:
    sc = sim.client()
    sim.control("POST", "/sim/price", {"token": "99926000", "ltp": 26000})
    ltp = sc.ltpData("NSE", "Nifty 50", "99926000")["data"]
    assert ltp["ltp"] == 26000.0
    found = sc.searchScrip("NFO", sim.nifty_option()[0][:-2])["data"]
    tokens = {f["tradingsymbol"][-2:]: f["symboltoken"] for f in found}
    full = sc.getMarketData("FULL", {"NFO": [tokens["CE"], tokens["PE"], "nope"]})["data"]
    assert full["unfetched"][0]["symbolToken"] == "nope"
    ce, pe = sorted(full["fetched"], key=lambda r: r["tradingSymbol"])
    assert len(ce["depth"]["buy"]) == 5 and ce["depth"]["buy"][0]["price"] < ce["ltp"]
    # Premiums are consistent with the underlying: put-call parity within a few ticks.
    now = time.time()
    expiry = time.mktime(time.strptime("2026-12-01 15:30", "%Y-%m-%d %H:%M")) - 19800 + \
        time.mktime(time.gmtime(0)) * -1
    years = max(0.0, expiry - now) / (365 * 86400)
    parity = 26000 - 26000 * math.exp(-0.065 * years)
    if years > 0:
        assert ce["ltp"] - pe["ltp"] == pytest.approx(parity, abs=0.2)
    candles = sc.getCandleData({"exchange": "NSE", "symboltoken": "3045",
                                "interval": "ONE_HOUR", "fromdate": "2026-11-23 09:15",
                                "todate": "2026-11-23 15:30"})["data"]
    assert len(candles) == 7 and candles[0][0].startswith("2026-11-23T09:15")


def test_scrip_master_route_matches_the_simulated_market(sim: Sim) -> None:
    rows = sim.http.get("/OpenAPI_File/files/OpenAPIScripMaster.json").json()
    nifty_ce = [r for r in rows if r["name"] == "NIFTY" and r["symbol"].endswith("CE")]
    assert len(nifty_ce) > 100 and all(r["exch_seg"] == "NFO" for r in nifty_ce)
    sc = sim.client()
    spot = sim.control("POST", "/sim/price", {"token": "99926000", "ltp": 26000})["ltp"]
    deep_itm = min(nifty_ce, key=lambda r: float(r["strike"]))
    strike = float(deep_itm["strike"]) / 100
    ltp = sc.ltpData("NFO", deep_itm["symbol"], deep_itm["token"])["data"]["ltp"]
    assert spot - strike <= ltp <= spot - strike + 60  # intrinsic plus a little time value
    assert sim.control("GET", "/sim/clock")["real"] is True


def test_sim_orders_lists_every_order_with_its_client_and_tag(sim: Sim) -> None:
    sc = sim.client()
    assert sim.control("GET", "/sim/orders")["orders"] == []
    oid = sc.placeOrderFullResponse(order(ordertag="A7E3"))["data"]["orderid"]
    def ids(query: str = "") -> list[tuple[str, str, str]]:
        # Its status and fill move on between two reads (the engine fills it meanwhile).
        return [(o["clientcode"], o["orderid"], o["ordertag"])
                for o in sim.control("GET", f"/sim/orders{query}")["orders"]]

    assert ids() == [(CLIENT, oid, "A7E3")]
    assert ids(f"?clientcode={CLIENT}") == [(CLIENT, oid, "A7E3")]
    assert ids("?clientcode=NOBODY") == []
