"""The Reflex app: pages, the HTTP API and the backend lifespan. Logic lives in engine/."""

import reflex as rx

from ats_app import routes
from ats_app.api import build_api
from ats_app.lifespan import services
from ats_app.pages.login import login_page
from ats_app.pages.overview import overview_page
from ats_app.pages.register import register_page
from ats_app.pages.settings import settings_page
from ats_app.state.auth import AuthState
from ats_app.state.overview import OverviewState

app = rx.App(
    theme=rx.theme(appearance="light", accent_color="indigo", radius="medium"),
    api_transformer=build_api(),
)
app.register_lifespan_task(services)

app.add_page(login_page, route=routes.LOGIN, title="Log in · ATS",
             on_load=AuthState.redirect_if_logged_in)
app.add_page(register_page, route=routes.REGISTER, title="Register · ATS",
             on_load=AuthState.redirect_if_logged_in)
app.add_page(overview_page, route=routes.OVERVIEW, title="Overview · ATS",
             on_load=[AuthState.require_login, OverviewState.load])
app.add_page(settings_page, route=routes.SETTINGS, title="Settings · ATS",
             on_load=AuthState.require_login)
