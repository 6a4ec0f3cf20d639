"""Offline Angel One SmartAPI simulator (issue 5).

A local server that speaks SmartAPI's REST envelope, the SmartWebSocketV2 binary feed and the
order-update socket closely enough that the unmodified official SDK cannot tell it from Angel.
Start it with ``python -m ats_app.simulator --port 9100`` (see ``server.main``).
"""

from ats_app.simulator.config import AccountSpec, SimConfig

__all__ = ["AccountSpec", "SimConfig"]
