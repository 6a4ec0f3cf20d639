"""Exits: the rules (stop-loss, target, trailing; pure), per-tick evaluation in paise, the
monitor's watchlist, and claiming a position for exactly one sell job. May import `market`
and below.
"""
