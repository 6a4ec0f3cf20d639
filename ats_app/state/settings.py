"""Profile page: risk limits and notification targets (the engine enforces, this edits)."""

from __future__ import annotations

import reflex as rx

from ats_app import routes
from ats_app.engine.core.errors import AtsError
from ats_app.engine.notify import targets as notify_targets
from ats_app.engine.risk import gate
from ats_app.engine.store.db import session_scope
from ats_app.state.auth import AuthState, sentence


def _blank(value: object) -> str:
    return "" if value is None else str(value)


class SettingsState(AuthState):
    limits: dict[str, str] = {}
    exit_on_loss: bool = False
    targets: list[dict[str, str]] = []
    events: list[list[str]] = []  # [name, description, "on"/"off"]
    settings_error: str = ""
    settings_message: str = ""

    def _reload(self, uid: int) -> None:
        with session_scope() as s:
            view = gate.limits_view(gate.get_limits(s, uid))
            self.targets = [
                {
                    "id": str(t.id),
                    "label": t.label,
                    "hint": t.url_hint,
                    "service": t.service,
                    "enabled": "on" if t.enabled else "off",
                }
                for t in notify_targets.list_targets(s, uid)
            ]
            switches = notify_targets.event_switches(s, uid)
        self.limits = {k: _blank(v) for k, v in view.items() if k != "exit_on_loss_limit"}
        self.exit_on_loss = bool(view["exit_on_loss_limit"])
        described = notify_targets.describe_events()
        self.events = [
            [name, described.get(name, name), "on" if on else "off"]
            for name, on in switches.items()
        ]

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.settings_error = self.settings_message = ""
        self._reload(uid)
        return None

    def _act(self, what: str, fn) -> None:
        uid = self._user_id()
        if uid is None:
            return
        self.settings_error = self.settings_message = ""
        try:
            with session_scope() as s:
                fn(s, uid)
            self.settings_message = what
        except AtsError as exc:
            self.settings_error = sentence(exc)
        self._reload(uid)

    @rx.event
    def save_limits(self, form: dict[str, str]):
        changes = {
            k: (form.get(k, "").strip() or None)
            for k in (
                "max_open_positions",
                "max_lots_per_order",
                "max_orders_per_day",
                "daily_loss_limit",
            )
        }
        changes["exit_on_loss_limit"] = form.get("exit_on_loss_limit") == "on"
        if form.get("square_off_at", "").strip():
            changes["square_off_at"] = form["square_off_at"].strip()
        self._act("Risk limits saved.", lambda s, uid: gate.set_limits(s, uid, **changes))

    @rx.event
    def add_target(self, form: dict[str, str]):
        self._act(
            "Notification target added.",
            lambda s, uid: notify_targets.add_target(
                s, uid, form.get("url", ""), form.get("label") or None
            ),
        )
        return rx.call_script("document.getElementById('notify-form').reset()")

    @rx.event
    def remove_target(self, target_id: str):
        self._act(
            "Target removed.", lambda s, uid: notify_targets.remove_target(s, uid, int(target_id))
        )

    @rx.event
    def test_targets(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            results = notify_targets.test_targets(s, uid)
        ok = sum(1 for r in results if r.get("ok"))
        self.settings_message = f"Test message sent to {ok} of {len(results)} target(s)."
        return None

    @rx.event
    def toggle_event(self, name: str):
        on = any(e[0] == name and e[2] == "on" for e in self.events)
        self._act(
            "Notification settings saved.",
            lambda s, uid: notify_targets.set_event_switches(
                s, uid, enable=() if on else (name,), disable=(name,) if on else ()
            ),
        )
