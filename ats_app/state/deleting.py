"""The confirm-then-delete flow shared by the list pages (a Reflex state mixin)."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from ats_app import routes
from ats_app.engine.core.errors import AtsError
from ats_app.engine.store.db import session_scope


class ConfirmDelete(rx.State, mixin=True):
    """Mixed into a page state that defines `_delete_row` and `_reload` (and has AuthState's
    `_user_id` and `error`). Vars are copied into each page state, not shared between them."""

    confirm_delete: int = 0

    def _delete_row(self, session: Session, uid: int, row_id: int) -> None:
        raise NotImplementedError

    @rx.event
    def ask_delete(self, row_id: str):
        self.confirm_delete = int(row_id)

    @rx.event
    def cancel_delete(self):
        self.confirm_delete = 0

    @rx.event
    def delete(self):
        from ats_app.state.auth import sentence

        uid = self._user_id()  # type: ignore[attr-defined]
        if uid is None:
            return rx.redirect(routes.LOGIN)
        try:
            with session_scope() as s:
                self._delete_row(s, uid, self.confirm_delete)
        except AtsError as exc:
            self.error = sentence(exc)  # type: ignore[attr-defined]
        self.confirm_delete = 0
        self._reload(uid)  # type: ignore[attr-defined]
        return None
