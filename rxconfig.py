"""Reflex configuration. Ports can be moved with FRONTEND_PORT / BACKEND_PORT (tests do)."""

import os

import reflex as rx

_backend_port = int(os.environ.get("BACKEND_PORT", "8000"))

config = rx.Config(
    app_name="ats_app",
    telemetry_enabled=False,
    frontend_port=int(os.environ.get("FRONTEND_PORT", "3000")),
    backend_port=_backend_port,
    api_url=os.environ.get("API_URL", f"http://localhost:{_backend_port}"),
    show_built_with_reflex=False,
    disable_plugins=[rx.plugins.SitemapPlugin],
)
