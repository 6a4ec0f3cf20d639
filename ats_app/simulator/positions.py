"""Net positions, cash and margin per client, enough for RMS limits and risk rejections."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ats_app.simulator.accounts import Account
from ats_app.simulator.scripmaster import Instrument

# Margin blocked per unit of a short, as a fraction of the underlying (options) or price:
# coarse, but it makes option writing expensive the way SPAN + exposure does.
SHORT_OPTION_FRACTION = 0.12
FUTURES_FRACTION = 0.12
INTRADAY_EQUITY_FRACTION = 0.20


@dataclass
class Position:
    inst: Instrument
    producttype: str
    buyqty: int = 0
    sellqty: int = 0
    buyamount: float = 0.0
    sellamount: float = 0.0
    ltp: float = 0.0

    @property
    def netqty(self) -> int:
        return self.buyqty - self.sellqty

    def pnl(self) -> float:
        return self.sellamount - self.buyamount + self.netqty * self.ltp

    def row(self) -> dict[str, Any]:
        inst, net = self.inst, self.netqty
        buyavg = self.buyamount / self.buyqty if self.buyqty else 0.0
        sellavg = self.sellamount / self.sellqty if self.sellqty else 0.0
        netvalue = self.sellamount - self.buyamount
        closed = min(self.buyqty, self.sellqty)
        realised = (sellavg - buyavg) * closed if closed else 0.0
        # Angel sends position numbers as strings.
        return {
            "exchange": inst.exch_seg, "symboltoken": inst.token,
            "producttype": self.producttype, "tradingsymbol": inst.symbol,
            "symbolname": inst.name, "instrumenttype": inst.instrumenttype,
            "priceden": "1.00", "pricenum": "1.00", "genden": "1.00", "gennum": "1.00",
            "precision": "2", "multiplier": "-1", "boardlotsize": "1",
            "buyqty": str(self.buyqty), "sellqty": str(self.sellqty),
            "buyamount": f"{self.buyamount:.2f}", "sellamount": f"{self.sellamount:.2f}",
            "symbolgroup": "XX", "strikeprice": f"{inst.strike:.2f}",
            "optiontype": inst.option_type, "expirydate": inst.expiry_text,
            "lotsize": str(inst.lotsize), "cfbuyqty": "0", "cfsellqty": "0",
            "cfbuyamount": "0.00", "cfsellamount": "0.00", "buyavgprice": f"{buyavg:.2f}",
            "sellavgprice": f"{sellavg:.2f}",
            "avgnetprice": f"{(buyavg if net > 0 else sellavg):.2f}",
            "netvalue": f"{netvalue:.2f}", "netqty": str(net),
            "totalbuyvalue": f"{self.buyamount:.2f}", "totalsellvalue": f"{self.sellamount:.2f}",
            "cfbuyavgprice": "0.00", "cfsellavgprice": "0.00",
            "totalbuyavgprice": f"{buyavg:.2f}", "totalsellavgprice": f"{sellavg:.2f}",
            "netprice": f"{(buyavg if net > 0 else sellavg):.2f}",
            "realised": f"{realised:.2f}", "unrealised": f"{self.pnl() - realised:.2f}",
            "pnl": f"{self.pnl():.2f}", "ltp": f"{self.ltp:.2f}", "close": f"{self.ltp:.2f}",
        }


class Positions:
    def __init__(self, accounts: dict[str, Account], spot_of: Any) -> None:
        self.accounts = accounts
        self._spot_of = spot_of  # callable(token) -> rupee price, for option short margin
        self._pos: dict[tuple[str, str, str], Position] = {}

    def for_client(self, client: str) -> list[Position]:
        return [p for (c, _, _), p in self._pos.items() if c == client]

    def _net(self, client: str, token: str, product: str) -> int:
        p = self._pos.get((client, token, product))
        return p.netqty if p else 0

    def _unit_margin(self, inst: Instrument, product: str, price: float) -> float:
        if inst.is_option:
            return max(price, SHORT_OPTION_FRACTION * self._spot_of(inst.underlying))
        if inst.instrumenttype.startswith("FUT"):
            return FUTURES_FRACTION * price
        return INTRADAY_EQUITY_FRACTION * price if product == "INTRADAY" else price

    def margin_needed(self, client: str, inst: Instrument, product: str, side: str,
                      qty: int, price: float) -> float:
        net = self._net(client, inst.token, product)
        if side == "BUY":
            closing = min(qty, max(0, -net))
            opening = qty - closing
            if inst.instrumenttype.startswith("FUT"):
                return opening * self._unit_margin(inst, product, price)
            return opening * price
        closing = min(qty, max(0, net))
        return (qty - closing) * self._unit_margin(inst, product, price)

    def blocked(self, client: str) -> float:
        total = 0.0
        for p in self.for_client(client):
            if p.netqty < 0:
                total += -p.netqty * self._unit_margin(p.inst, p.producttype, p.ltp)
        return total

    def available(self, client: str) -> float:
        acct = self.accounts[client]
        return acct.cash - self.blocked(client)

    def fill(self, client: str, inst: Instrument, product: str, buy: bool, qty: int,
             price: float, ltp: float) -> None:
        key = (client, inst.token, product)
        p = self._pos.setdefault(key, Position(inst, product))
        value = qty * price
        if buy:
            p.buyqty += qty
            p.buyamount += value
            self.accounts[client].cash -= value
        else:
            p.sellqty += qty
            p.sellamount += value
            self.accounts[client].cash += value
        p.ltp = ltp

    def mark(self, price_of: Any) -> None:
        """Refresh each position's LTP; ``price_of(token)`` returns rupees or None."""
        for p in self._pos.values():
            px = price_of(p.inst.token)
            if px is not None:
                p.ltp = px

    def rms(self, client: str) -> dict[str, str]:
        acct = self.accounts[client]
        blocked = self.blocked(client)
        unrealised = sum(p.pnl() for p in self.for_client(client))
        net = acct.cash - blocked
        return {k: f"{v:.2f}" for k, v in {
            "net": net, "availablecash": acct.cash, "availableintradaypayin": 0.0,
            "availablelimitmargin": 0.0, "collateral": 0.0, "m2munrealized": unrealised,
            "m2mrealized": 0.0, "utiliseddebits": blocked, "utilisedspan": blocked,
            "utilisedoptionpremium": 0.0, "utilisedholdingsales": 0.0,
            "utilisedexposure": 0.0, "utilisedturnover": 0.0, "utilisedpayout": 0.0,
        }.items()}
