"""The webhook: the alert message's schema (pure), receiving an alert (validate, persist,
answer, enqueue) and the link cache the answer reads. May import `market` and below.
"""
