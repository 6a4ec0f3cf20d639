"""The processes that run the system: the RQ worker, the monitor (exit engine), the feed,
the order-update consumer, health checks, and the development supervisor with its embedded
Redis. The top of the engine: may import any package below; only the app imports it.
"""
