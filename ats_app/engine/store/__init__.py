"""Persistence: the database (engines, sessions, steps after a commit), the tables, the
audit log, the Redis connection, the RQ job queue, live dashboard channels and one-time
download links. May import `core` only.
"""
