"""Binary market-data packets exactly as SmartWebSocketV2 decodes them (little-endian, paise).

Layout (see ``SmartApi/smartWebSocketV2.py::_parse_binary_data``): a 51-byte LTP head, 72 more
bytes for Quote (123 total) and 256 more for SnapQuote (379 total).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

LTP_MODE, QUOTE_MODE, SNAP_QUOTE_MODE = 1, 2, 3

_HEAD = struct.Struct("<BB25sqqq")  # mode, exchange type, token, sequence, exch ts, ltp
_QUOTE_TAIL = struct.Struct("<qqqddqqqq")  # ltq, atp, volume, tbq, tsq, open, high, low, close
_SNAP_MID = struct.Struct("<qqq")  # last traded ts, open interest, OI change %
_LEVEL = struct.Struct("<HqqH")  # flag (0 buy / 1 sell... see note below), qty, price, orders
_SNAP_TAIL = struct.Struct("<qqqq")  # upper circuit, lower circuit, 52w high, 52w low

LTP_LEN = _HEAD.size
QUOTE_LEN = LTP_LEN + _QUOTE_TAIL.size
SNAP_QUOTE_LEN = QUOTE_LEN + _SNAP_MID.size + 10 * _LEVEL.size + _SNAP_TAIL.size


@dataclass(frozen=True)
class Level:
    price: int  # paise
    quantity: int
    orders: int


@dataclass(frozen=True)
class TickData:
    """Everything a packet can carry; prices in paise, timestamps in epoch milliseconds."""

    exchange_type: int
    token: str
    sequence: int
    exchange_ts_ms: int
    ltp: int
    last_qty: int = 0
    avg_price: int = 0
    volume: int = 0
    total_buy_qty: float = 0.0
    total_sell_qty: float = 0.0
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    last_trade_ts_ms: int = 0
    open_interest: int = 0
    oi_change_pct: int = 0
    bids: tuple[Level, ...] = field(default_factory=tuple)
    asks: tuple[Level, ...] = field(default_factory=tuple)
    upper_circuit: int = 0
    lower_circuit: int = 0
    week52_high: int = 0
    week52_low: int = 0


def _head(mode: int, t: TickData) -> bytes:
    return _HEAD.pack(mode, t.exchange_type, t.token.encode("ascii")[:25], t.sequence,
                      t.exchange_ts_ms, t.ltp)


def _quote_tail(t: TickData) -> bytes:
    return _QUOTE_TAIL.pack(t.last_qty, t.avg_price, t.volume, t.total_buy_qty,
                            t.total_sell_qty, t.open, t.high, t.low, t.close)


def _levels(t: TickData) -> bytes:
    # Angel flags buy levels with 1 and sell levels with 0; the SDK's decoder files flag-0
    # entries as "buy" internally and then swaps the lists, so its output comes out right.
    out = bytearray()
    for side_flag, levels in ((1, t.bids), (0, t.asks)):
        padded = list(levels[:5]) + [Level(0, 0, 0)] * (5 - len(levels[:5]))
        for lvl in padded:
            out += _LEVEL.pack(side_flag, lvl.quantity, lvl.price, lvl.orders)
    return bytes(out)


def encode(mode: int, t: TickData) -> bytes:
    """Encode one tick in the given subscription mode (1 LTP, 2 Quote, 3 SnapQuote)."""
    if mode == LTP_MODE:
        return _head(mode, t)
    if mode == QUOTE_MODE:
        return _head(mode, t) + _quote_tail(t)
    if mode == SNAP_QUOTE_MODE:
        return (_head(mode, t) + _quote_tail(t)
                + _SNAP_MID.pack(t.last_trade_ts_ms, t.open_interest, t.oi_change_pct)
                + _levels(t)
                + _SNAP_TAIL.pack(t.upper_circuit, t.lower_circuit, t.week52_high, t.week52_low))
    raise ValueError(f"unsupported subscription mode {mode}")


def encode_ltp(exchange_type: int, token: str, sequence: int, ts_ms: int, ltp: int) -> bytes:
    """Fast path for the hot LTP loop: skips building a TickData."""
    return _HEAD.pack(LTP_MODE, exchange_type, token.encode("ascii")[:25], sequence, ts_ms, ltp)
