"""Notices to the trader's phone and inbox: events and their messages (pure), per-user
targets (encrypted Apprise URLs) and switches, and delivery through a queue of its own.
May import `tenants`, `store`, `core`.
"""
