"""Who trades: users and login, broker accounts (credentials encrypted at rest), strategies,
webhook links, and the encryption box for secrets. May import `store` and `core`.
"""
