"""The Reflex app: pages, the HTTP API and the backend lifespan. Logic lives in engine/."""

import reflex as rx

from ats_app import routes
from ats_app.api import build_api
from ats_app.lifespan import services
from ats_app.pages.accounts import accounts_page
from ats_app.pages.alerts import alerts_page
from ats_app.pages.audit import audit_page
from ats_app.pages.login import login_page
from ats_app.pages.orders import orders_page
from ats_app.pages.overview import overview_page
from ats_app.pages.positions import positions_page
from ats_app.pages.profile import profile_page
from ats_app.pages.register import register_page
from ats_app.pages.replay import replay_page
from ats_app.pages.reports import reports_page
from ats_app.pages.strategies import strategies_page
from ats_app.pages.webhooks import webhooks_page
from ats_app.state.accounts import AccountsState
from ats_app.state.alerts import AlertsState
from ats_app.state.audit import AuditState
from ats_app.state.auth import AuthState
from ats_app.state.orders import OrdersState
from ats_app.state.overview import OverviewState
from ats_app.state.positions import PositionsState
from ats_app.state.replay import ReplayState
from ats_app.state.reports import ReportsState
from ats_app.state.settings import SettingsState
from ats_app.state.strategies import StrategiesState
from ats_app.state.webhooks import WebhooksState

app = rx.App(
    theme=rx.theme(appearance="light", accent_color="indigo", radius="medium"),
    api_transformer=build_api(),
)
app.register_lifespan_task(services)

app.add_page(
    login_page, route=routes.LOGIN, title="Log in · ATS", on_load=AuthState.redirect_if_logged_in
)
app.add_page(
    register_page,
    route=routes.REGISTER,
    title="Register · ATS",
    on_load=AuthState.redirect_if_logged_in,
)

# Every other page: the session is checked on load, and again by each handler that acts.
for page, route, title, loader in (
    (overview_page, routes.OVERVIEW, "Overview", OverviewState.load),
    (accounts_page, routes.ACCOUNTS, "Broker accounts", AccountsState.load),
    (strategies_page, routes.STRATEGIES, "Strategies", StrategiesState.load),
    (webhooks_page, routes.WEBHOOKS, "Webhook links", WebhooksState.load),
    (orders_page, routes.ORDERS, "Orders", OrdersState.load),
    (positions_page, routes.POSITIONS, "Positions", PositionsState.load),
    (alerts_page, routes.ALERTS, "Alerts", AlertsState.load),
    (reports_page, routes.REPORTS, "Reports", ReportsState.load),
    (replay_page, routes.REPLAY, "What-if replay", ReplayState.load),
    (audit_page, routes.AUDIT, "Audit log", AuditState.load),
    (profile_page, routes.PROFILE, "Profile", SettingsState.load),
):
    on_load = (
        [AuthState.require_login]
        if loader is AuthState.require_login
        else [AuthState.require_login, loader]
    )
    app.add_page(page, route=route, title=f"{title} · ATS", on_load=on_load)
