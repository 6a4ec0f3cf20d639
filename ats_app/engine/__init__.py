"""Everything that trades, and nothing of Reflex: the dashboard, the CLI and the HTTP routes
call into these packages; nothing here imports them.

The packages form one stack; a module imports only from its own package or one below it
(`tests/unit/test_layering.py` checks this, and that no import goes in a circle):

    services    the processes: RQ worker, monitor, feed, order-update consumer, dev supervisor
    intake      the webhook: receive and answer an alert, the link cache
    execution   the RQ jobs: alert -> orders (entry, submit), exits (exit_order), positions,
                the order store, order updates, recovery, the kill action (halt); the
                alert message's schema (signals, pure)
    risk        the risk gate in the order path, limits, kill switch state, bot, the day's schedule
    exits       exit rules (pure), per-tick tracking, the watchlist, exit claims
    market      instruments and their resolution (pure), scrip master, hours, the tick bus
    broker      one interface, two adapters (Angel One SmartAPI, paper); parsing is pure
    notify      notices to the trader (Telegram, e-mail, ... through Apprise)
    tenants     users, broker accounts, strategies, webhook links, secrets at rest
    store       database, tables, audit log, Redis, the job queue
    core        settings, errors, money, the clock, the order state machine
"""
