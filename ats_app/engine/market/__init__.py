"""Market data and reference data: instruments and the scrip master, resolution of an alert's
strike/expiry to one contract (pure), NSE hours and holidays, the tick bus (Redis names and
formats), the tick writer, and where each position's prices come from. May import `broker`
and below.
"""
