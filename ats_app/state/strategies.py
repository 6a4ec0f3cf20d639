"""Strategies page state."""

from __future__ import annotations

import reflex as rx
from sqlmodel import Session

from ats_app import routes
from ats_app.engine.core.errors import AtsError
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import strategies
from ats_app.state.auth import AuthState, sentence
from ats_app.state.deleting import ConfirmDelete


class StrategiesState(ConfirmDelete, AuthState):
    def _delete_row(self, session: Session, uid: int, row_id: int) -> None:
        strategies.delete_strategy(session, uid, row_id)

    rows: list[dict[str, str]] = []
    editing_id: int = 0
    edit_name: str = ""
    edit_description: str = ""

    def _reload(self, uid: int) -> None:
        with session_scope() as s:
            self.rows = [
                {"id": str(v.id), "name": v.name, "description": v.description}
                for v in strategies.list_strategies(s, uid)
            ]

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        self._reload(uid)
        return None

    @rx.event
    def save(self, form: dict[str, str]):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        try:
            with session_scope() as s:
                if self.editing_id:
                    strategies.update_strategy(
                        s, uid, self.editing_id, form.get("name", ""), form.get("description", "")
                    )
                else:
                    strategies.create_strategy(
                        s, uid, form.get("name", ""), form.get("description", "")
                    )
        except AtsError as exc:
            self.error = sentence(exc)
            return None
        self.message = "Strategy saved."
        self.editing_id = 0
        self.edit_name = self.edit_description = ""
        self._reload(uid)
        return rx.call_script("document.getElementById('strategy-form').reset()")

    @rx.event
    def start_edit(self, strategy_id: str):
        row = next((r for r in self.rows if r["id"] == strategy_id), None)
        if row:
            self.editing_id = int(strategy_id)
            self.edit_name, self.edit_description = row["name"], row["description"]

    @rx.event
    def cancel_edit(self):
        self.editing_id = 0
        self.edit_name = self.edit_description = ""
