"""The vocabulary every layer speaks: settings, errors, money in paise, the clock (IST and
a fake-able `now`), and the order state machine. Imports nothing of the engine but itself.
"""
