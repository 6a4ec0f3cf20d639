"""Risk in the order path: the pure policy (`check -> Approved | Denied`), the gate that
reads a user's limits and day and records refusals, the kill switch's state, the bot's
on/off, and the trading day's schedule (square-off, loss watch, daily summary). May import
`exits` and below.
"""
