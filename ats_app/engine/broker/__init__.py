"""Brokers behind one interface (`base.Broker`): Angel One SmartAPI (live, through the
official SDK) and paper trading. `parsing` and `status` translate SmartAPI's answers (pure);
`session` and `ratelimit` share logins and Angel's limits through Redis; `factory` is the one
place that picks a broker for a link. Also: the SDK's websockets minus their side effects,
latest prices, charges. May import `notify` and below.
"""
