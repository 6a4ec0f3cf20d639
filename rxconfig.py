"""Reflex configuration.

Reflex reads only REFLEX_-prefixed variables (REFLEX_API_URL, ...); our documented
FRONTEND_PORT / BACKEND_PORT are turned into its ports here, from the environment or `.env`.
`reflex run --frontend-port/--backend-port` still win (tests use them to run on free ports).
"""

import reflex as rx

from ats_app.engine.core.config import environment, reflex_ports

config = rx.Config(
    app_name="ats_app",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    disable_plugins=[rx.plugins.SitemapPlugin],
    **reflex_ports(environment()),  # type: ignore[arg-type]
)
