"""Page routes in one place so links and redirects never drift apart."""

LOGIN = "/login"
REGISTER = "/register"
OVERVIEW = "/"
ACCOUNTS = "/accounts"
STRATEGIES = "/strategies"
WEBHOOKS = "/webhooks"
ORDERS = "/orders"
POSITIONS = "/positions"
ALERTS = "/alerts"
REPORTS = "/reports"
REPLAY = "/replay"
AUDIT = "/audit"
PROFILE = "/profile"

NAV = (
    ("Overview", OVERVIEW),
    ("Accounts", ACCOUNTS),
    ("Strategies", STRATEGIES),
    ("Webhooks", WEBHOOKS),
    ("Orders", ORDERS),
    ("Positions", POSITIONS),
    ("Alerts", ALERTS),
    ("Reports", REPORTS),
    ("Replay", REPLAY),
    ("Audit", AUDIT),
    ("Profile", PROFILE),
)
