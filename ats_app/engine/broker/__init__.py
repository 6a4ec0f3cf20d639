"""Brokers behind one interface: Angel One SmartAPI (live) and paper trading."""
