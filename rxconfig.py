"""Reflex configuration.

Every field can be overridden by an environment variable of the same name in capitals
(e.g. FRONTEND_PORT, BACKEND_PORT, API_URL); tests use that to run on free ports.
"""

import reflex as rx

config = rx.Config(
    app_name="ats_app",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    disable_plugins=[rx.plugins.SitemapPlugin],
)
