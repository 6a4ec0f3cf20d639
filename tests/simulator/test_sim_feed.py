"""Market feed behaviour, observed only through the SDK's SmartWebSocketV2."""

from __future__ import annotations

import time

from sim_kit import CLIENT, Sim, wait_for

SBIN, RELIANCE, INFY = "3045", "2885", "1594"


def test_ltp_and_quote_ticks_for_subscribed_tokens_only(sim: Sim) -> None:
    sc = sim.client()
    sim.control("POST", "/sim/price", {"token": SBIN, "ltp": 102.5})
    feed = sim.feed(sc).start()
    try:
        feed.ws.subscribe("corr000001", 1, [{"exchangeType": 1, "tokens": [SBIN]}])
        feed.ws.subscribe("corr000002", 2, [{"exchangeType": 1, "tokens": [RELIANCE]}])
        assert wait_for(lambda: feed.tokens() == {SBIN, RELIANCE})
        time.sleep(0.25)
        ltp = [t for t in feed.ticks if t["subscription_mode"] == 1]
        quote = [t for t in feed.ticks if t["subscription_mode"] == 2]
        assert feed.tokens() == {SBIN, RELIANCE}  # nothing unsubscribed leaks in
        assert {t["token"] for t in ltp} == {SBIN} and {t["token"] for t in quote} == {RELIANCE}
        assert all(t["last_traded_price"] == 10250 for t in ltp)  # pinned, in paise
        assert "last_traded_quantity" not in ltp[0]
        q = quote[-1]
        assert q["exchange_type"] == 1 and q["subscription_mode_val"] == "QUOTE"
        assert q["low_price_of_the_day"] <= q["last_traded_price"] <= q["high_price_of_the_day"]
        assert q["volume_trade_for_the_day"] > 0 and q["last_traded_price"] % 5 == 0
        assert abs(q["exchange_timestamp"] / 1000 - time.time()) < 5
        assert [t["sequence_number"] for t in quote] == sorted(t["sequence_number"]
                                                                for t in quote)
    finally:
        feed.close()


def test_snap_quote_depth_straddles_ltp(sim: Sim) -> None:
    sc = sim.client()
    feed = sim.feed(sc).start()
    try:
        token = sim.nifty_option()[1]
        feed.ws.subscribe("corr000003", 3, [{"exchangeType": 2, "tokens": [token]}])
        assert wait_for(lambda: feed.ticks)
        t = feed.ticks[-1]
        assert t["subscription_mode_val"] == "SNAP_QUOTE" and t["exchange_type"] == 2
        assert t["best_5_buy_data"][0]["price"] < t["last_traded_price"]
        assert t["best_5_sell_data"][0]["price"] > t["last_traded_price"]
        assert t["open_interest"] > 0 and t["upper_circuit_limit"] > t["lower_circuit_limit"]
    finally:
        feed.close()


def test_unsubscribe_stops_ticks(sim: Sim) -> None:
    sc = sim.client()
    feed = sim.feed(sc).start()
    try:
        feed.ws.subscribe("corr000004", 1, [{"exchangeType": 1, "tokens": [SBIN, INFY]}])
        assert wait_for(lambda: feed.tokens() == {SBIN, INFY})
        feed.ws.unsubscribe("corr000005", 1, [{"exchangeType": 1, "tokens": [SBIN]}])
        # Each round sends the tokens in subscription order (SBIN, INFY), so two INFY ticks
        # in a row prove a round without SBIN: the unsubscribe took effect.
        assert wait_for(lambda: [t["token"] for t in feed.ticks[-2:]] == [INFY, INFY],
                        timeout=15)
        mark = len(feed.ticks)
        assert wait_for(lambda: len(feed.ticks) > mark + 3)
        assert feed.tokens(mark) == {INFY}
    finally:
        feed.close()


def test_price_path_is_replayed_in_order(sim: Sim) -> None:
    sc = sim.client()
    feed = sim.feed(sc).start()
    try:
        feed.ws.subscribe("corr000006", 1, [{"exchangeType": 1, "tokens": [SBIN]}])
        assert wait_for(lambda: feed.ticks, timeout=15)  # subscribed before the path starts
        # 1 s per price: about ten ticks each at the 100 ms feed cadence, so none is missed.
        sim.control("POST", "/sim/price", {"token": SBIN, "path": [101, 102, 99.9],
                                           "interval_ms": 1000})
        assert wait_for(lambda: feed.ticks and feed.ticks[-1]["last_traded_price"] == 9990,
                        timeout=15)
        seen = [t["last_traded_price"] for t in feed.ticks]
        firsts = [seen.index(p) for p in (10100, 10200, 9990)]
        assert firsts == sorted(firsts)
        sim.control("POST", "/sim/price", {"token": SBIN, "ltp": None})  # release
        assert wait_for(lambda: len({t["last_traded_price"] for t in feed.ticks[-5:]}) >= 1)
    finally:
        feed.close()


def test_three_connections_per_client_and_token_cap(sim_factory) -> None:
    sim: Sim = sim_factory(max_tokens_per_ws=2)
    sc = sim.client()
    feeds = [sim.feed(sc).start() for _ in range(3)]
    extra = sim.feed(sc)
    try:
        extra.start(expect_open=False)
        assert wait_for(lambda: extra.errors)
        assert not extra.opened.is_set()  # the fourth connection is refused
        f = feeds[0]
        f.ws.subscribe("corr000007", 1, [{"exchangeType": 1, "tokens": [SBIN, INFY]}])
        f.ws.subscribe("corr000008", 1, [{"exchangeType": 1, "tokens": [RELIANCE]}])
        assert wait_for(lambda: f.tokens() == {SBIN, INFY})
        time.sleep(0.3)
        assert RELIANCE not in f.tokens()  # over the per-connection cap: not subscribed
    finally:
        for f in feeds:
            f.close()
        extra.close()
    # Closing frees the slots again.
    again = sim.feed(sc).start()
    again.close()


def test_feed_refuses_bad_feed_token(sim: Sim) -> None:
    sc = sim.client()
    sc.setFeedToken("forged")
    feed = sim.feed(sc, client=CLIENT).start(expect_open=False)
    try:
        assert wait_for(lambda: feed.errors)
        assert not feed.opened.is_set()
    finally:
        feed.close()


def test_ws_drop_fault_and_sdk_reconnect(sim: Sim) -> None:
    sc = sim.client()
    feed = sim.feed(sc, retries=1, retry_delay=0.1)
    opens: list[float] = []
    sub = [{"exchangeType": 1, "tokens": [SBIN]}]

    def on_open(_w: object) -> None:
        # The SDK's reconnect path clears RESUBSCRIBE_FLAG in close_connection() before it
        # reconnects, so it calls on_open again instead of resubscribing: clients must
        # subscribe in on_open every time. This test pins that SDK behaviour down.
        opens.append(time.monotonic())
        feed.opened.set()
        feed.ws.subscribe("corr000009", 1, sub)

    feed.ws.on_open = on_open
    feed.start()
    try:
        assert wait_for(lambda: feed.ticks)
        assert sim.control("POST", "/sim/faults", {"route": "smart-stream",
                                                   "kind": "ws_drop"})["dropped"] == 1
        assert wait_for(lambda: len(opens) == 2, timeout=5)
        mark = len(feed.ticks)
        assert wait_for(lambda: len(feed.ticks) > mark + 2, timeout=5)
        assert feed.tokens(mark) == {SBIN}
        assert feed.errors == []  # one retry was allowed, so no give-up callback yet
    finally:
        feed.close()
