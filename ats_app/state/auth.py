"""Login state. The browser keeps only an opaque session token; the database decides.

Every handler that reads or changes data calls `_user_id()` again: a page's on_load check
alone would let an expired or logged-out session keep acting.
"""

from __future__ import annotations

import reflex as rx

from ats_app import routes
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import users


def sentence(exc: Exception) -> str:
    """An engine error as a sentence for the page (first letter up, the rest untouched)."""
    text = str(exc)
    return text[:1].upper() + text[1:]


class AuthState(rx.State):
    session_token: str = rx.LocalStorage("", name="ats_session", sync=True)
    username: str = ""
    display_name: str = ""
    is_admin: bool = False
    error: str = ""
    message: str = ""

    def _user_id(self) -> int | None:
        with session_scope() as s:
            user = users.user_for_token(s, self.session_token)
        return user.id if user else None

    def _set_user(self, user: users.UserView | None) -> None:
        self.username = user.username if user else ""
        self.display_name = f"{user.first_name} {user.last_name}".strip() if user else ""
        self.is_admin = bool(user and user.is_admin)

    @rx.var
    def registration_open(self) -> bool:
        return settings().registration_open

    @rx.var
    def logged_in(self) -> bool:
        return self.username != ""

    @rx.event
    def require_login(self):
        """on_load of every protected page."""
        # error/message live on this shared parent state: start each page clean.
        self.error = self.message = ""
        with session_scope() as s:
            user = users.user_for_token(s, self.session_token)
        self._set_user(user)
        if user is None:
            self.session_token = ""
            return rx.redirect(routes.LOGIN)
        return None

    @rx.event
    def redirect_if_logged_in(self):
        """on_load of the login/register pages."""
        self.error = ""
        with session_scope() as s:
            user = users.user_for_token(s, self.session_token)
        if user is not None:
            self._set_user(user)
            return rx.redirect(routes.OVERVIEW)
        return None

    @rx.event
    def login(self, form: dict[str, str]):
        self.error = ""
        username = form.get("username", "")
        password = form.get("password", "")
        if not username.strip() or not password:
            self.error = "Enter your username and password."
            return None
        try:
            with session_scope() as s:
                user = users.authenticate(s, username, password)
                token = users.start_session(s, user.id)
        except AtsError as exc:
            self.error = sentence(exc)
            return None
        self.session_token = token
        self._set_user(user)
        return rx.redirect(routes.OVERVIEW)

    @rx.event
    def register(self, form: dict[str, str]):
        self.error = ""
        if not settings().registration_open:
            self.error = "Registration is closed on this server. Ask the administrator."
            return None
        if form.get("password", "") != form.get("confirm", ""):
            self.error = "The two passwords do not match."
            return None
        try:
            with session_scope() as s:
                user = users.create_user(
                    s,
                    form.get("username", ""),
                    form.get("password", ""),
                    form.get("first_name", ""),
                    form.get("last_name", ""),
                )
                token = users.start_session(s, user.id)
        except AtsError as exc:
            self.error = sentence(exc)
            return None
        self.session_token = token
        self._set_user(user)
        return rx.redirect(routes.OVERVIEW)

    @rx.event
    def logout(self):
        with session_scope() as s:
            users.end_session(s, self.session_token)
        self.session_token = ""
        self._set_user(None)
        return rx.redirect(routes.LOGIN)

    @rx.event
    def change_password(self, form: dict[str, str]):
        self.error = ""
        self.message = ""
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        if form.get("new_password", "") != form.get("confirm", ""):
            self.error = "The two new passwords do not match."
            return None
        try:
            with session_scope() as s:
                users.change_password(
                    s, uid, form.get("current_password", ""), form.get("new_password", "")
                )
                # All sessions were ended; keep this browser logged in with a fresh one.
                self.session_token = users.start_session(s, uid)
        except AtsError as exc:
            self.error = sentence(exc)
            return None
        self.message = "Password changed. Other browsers have been logged out."
        return None
