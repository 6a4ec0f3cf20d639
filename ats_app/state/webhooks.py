"""Webhook links page state: create/edit/delete, reveal and rotate secrets, test alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import reflex as rx
from sqlmodel import Session

from ats_app import routes
from ats_app.engine.core.config import settings
from ats_app.engine.core.errors import AtsError, ValidationError
from ats_app.engine.intake import alerts, messages
from ats_app.engine.store.db import session_scope
from ats_app.engine.tenants import accounts, strategies, webhooks
from ats_app.state.auth import AuthState, sentence
from ats_app.state.deleting import ConfirmDelete


def _pct(value: float | None) -> str:
    return "off" if value is None else f"{value:g}%"


def _link_row(
    v: webhooks.LinkView, strategy_names: dict[int, str], account_labels: dict[int, str]
) -> dict[str, str]:
    return {
        "id": str(v.id),
        "name": v.name,
        "url": v.url,
        "strategy": strategy_names.get(v.strategy_id or 0, "—"),
        "accounts": ", ".join(
            f"{account_labels.get(a.account_id, a.account_id)} ×{a.lot_multiplier}"
            for a in v.accounts
        )
        or "paper (no account)",
        "rules": f"SL {_pct(v.stop_loss_pct)} · target {_pct(v.target_pct)} · "
        f"trail {_pct(v.trailing_stop_pct)}" + (" · exits by alert" if v.exits_by_signal else "")
        + (" · stop at broker" if v.broker_stop else ""),
        "mode": "PAPER" if v.paper or settings().trading_mode == "paper" else "LIVE",
        "enabled": "enabled" if v.enabled else "disabled",
        "sl": "" if v.stop_loss_pct is None else f"{v.stop_loss_pct:g}",
        "target": "" if v.target_pct is None else f"{v.target_pct:g}",
        "tsl": "" if v.trailing_stop_pct is None else f"{v.trailing_stop_pct:g}",
        "strategy_id": str(v.strategy_id or ""),
        "paper": "1" if v.paper else "",
        "is_enabled": "1" if v.enabled else "",
        "queue": "1" if v.queue_outside_hours else "",
        "exit_signal": "1" if v.exits_by_signal else "",
        "broker_stop": "1" if v.broker_stop else "",
        "multipliers": json.dumps({str(a.account_id): a.lot_multiplier for a in v.accounts}),
    }


def link_accounts_from_form(form: dict[str, str]) -> list[webhooks.LinkAccount]:
    """`mult_<account id>` inputs → the link's accounts; empty or 0 means "not this one"."""
    chosen = []
    for key, value in form.items():
        if key.startswith("mult_") and str(value).strip() not in ("", "0"):
            try:
                chosen.append(webhooks.LinkAccount(int(key[5:]), int(value)))
            except ValueError as exc:
                raise ValidationError(
                    "lot multiplier must be a whole number", "lot_multiplier"
                ) from exc
    return chosen


_DEFAULT_CHOICES = {
    "kind": "option", "underlying": "NIFTY", "strike": "ATM", "expiry": "nearest",
    "symbol": "", "tradingsymbol": "", "exchange": "NFO", "lots": "1", "send": "alertcondition",
}


def trade_from_choices(choices: dict[str, str]) -> messages.Trade:
    """The builder's fields → what the link trades (ValidationError names a bad field)."""
    return messages.parse_trade(**{k: choices.get(k, v) for k, v in _DEFAULT_CHOICES.items()})


class WebhooksState(ConfirmDelete, AuthState):
    def _delete_row(self, session: Session, uid: int, row_id: int) -> None:
        webhooks.delete_link(session, uid, row_id)

    rows: list[dict[str, str]] = []
    strategy_options: list[list[str]] = []  # [id, name]
    account_options: list[list[str]] = []  # [id, label]
    revealed: dict[str, str] = {}  # link id -> secret, only after "Reveal"
    # The message builder, open on one revealed link at a time (`builder_link`): its
    # choices, and the messages / Pine / steps they make with that link's secret.
    builder_link: str = ""
    choices: dict[str, str] = _DEFAULT_CHOICES
    plan_messages: list[dict[str, str]] = []  # name, message, where
    plan_pine: str = ""
    plan_steps: list[str] = []
    builder_error: str = ""
    results: dict[str, str] = {}  # link id -> last test alert result
    editing_id: int = 0
    edit: dict[str, str] = {}
    edit_multipliers: dict[str, str] = {}  # account id -> lot multiplier of the edited link

    def _reload(self, uid: int) -> None:
        with session_scope() as s:
            strats = strategies.list_strategies(s, uid)
            accs = accounts.list_accounts(s, uid)
            links = webhooks.list_links(s, uid)
        names = {x.id: x.name for x in strats}
        labels = {a.id: a.label for a in accs}
        self.strategy_options = [[str(x.id), x.name] for x in strats]
        self.account_options = [[str(a.id), a.label] for a in accs]
        self.rows = [_link_row(v, names, labels) for v in links]

    @rx.event
    def load(self):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        self.revealed = {}
        self._close_builder()
        self._reload(uid)
        return None

    @rx.event
    def save(self, form: dict[str, str]):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        self.error = self.message = ""
        try:
            strategy = form.get("strategy_id") or ""
            fields = dict(
                name=form.get("name", ""),
                accounts=link_accounts_from_form(form),
                strategy_id=int(strategy) if strategy.isdigit() else None,
                stop_loss_pct=form.get("sl"),
                target_pct=form.get("target"),
                trailing_stop_pct=form.get("tsl"),
                paper=form.get("paper") == "on",
                enabled=form.get("enabled") == "on",
                queue_outside_hours=form.get("queue_outside_hours") == "on",
                exits_by_signal=form.get("exits_by_signal") == "on",
                broker_stop=form.get("broker_stop") == "on",
            )
            with session_scope() as s:
                if self.editing_id:
                    webhooks.update_link(s, uid, self.editing_id, **fields)  # type: ignore[arg-type]
                else:
                    webhooks.create_link(s, uid, **fields)  # type: ignore[arg-type]
        except AtsError as exc:
            if isinstance(exc, ValidationError):  # refused input is audited, nothing changed
                webhooks.record_refusal(uid, self.editing_id or None, exc)
            self.error = sentence(exc)
            return None
        self.message = "Webhook link saved."
        self.editing_id, self.edit, self.edit_multipliers = 0, {}, {}
        self._reload(uid)
        return rx.call_script("document.getElementById('link-form').reset()")

    @rx.event
    def start_edit(self, link_id: str):
        row = next((r for r in self.rows if r["id"] == link_id), None)
        if row:
            self.editing_id, self.edit = int(link_id), dict(row)
            self.edit_multipliers = {k: str(v) for k, v in json.loads(row["multipliers"]).items()}

    @rx.event
    def cancel_edit(self):
        self.editing_id, self.edit, self.edit_multipliers = 0, {}, {}

    def _secret_action(self, link_id: str, rotate: bool) -> None:
        uid = self._user_id()
        if uid is None:
            return
        with session_scope() as s:
            secret = (webhooks.rotate_secret if rotate else webhooks.reveal_secret)(
                s, uid, int(link_id)
            )
        self.revealed[link_id] = secret
        self.builder_link = link_id
        self._build()

    def _close_builder(self) -> None:
        self.builder_link, self.builder_error, self.plan_pine = "", "", ""
        self.plan_messages, self.plan_steps = [], []

    def _build(self) -> None:
        """The open link's messages from the builder's choices and the link's secret."""
        secret = self.revealed.get(self.builder_link)
        if secret is None:
            self._close_builder()
            return
        try:
            plan = messages.build(trade_from_choices(self.choices), secret)
        except AtsError as exc:
            # Stale messages beside an error would be pasted by someone: show none.
            self.builder_error = sentence(exc)
            self.plan_messages, self.plan_steps, self.plan_pine = [], [], ""
            return
        self.builder_error = ""
        self.plan_messages = [
            {"name": m.name, "message": m.message, "where": m.where} for m in plan.messages
        ]
        self.plan_pine, self.plan_steps = plan.pine, list(plan.steps)

    @rx.event
    def reveal(self, link_id: str):
        self._secret_action(link_id, rotate=False)

    @rx.event
    def hide(self, link_id: str):
        self.revealed.pop(link_id, None)
        if self.builder_link == link_id:
            self._close_builder()

    @rx.event
    def set_choice(self, field: str, value: str):
        if field in _DEFAULT_CHOICES:
            self.choices = {**self.choices, field: value}
            self._build()

    @rx.event
    def copy_text(self, text: str, what: str):
        return [rx.set_clipboard(text), rx.toast(f"{what} copied")]

    @rx.event
    def rotate(self, link_id: str):
        self._secret_action(link_id, rotate=True)
        self.results[link_id] = "New secret: update the message in your TradingView alert."

    @rx.event
    def rotate_url(self, link_id: str):
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            webhooks.rotate_token(s, uid, int(link_id))
        self.results[link_id] = "New URL: the old one answers 404 from now on."
        self._reload(uid)
        return None

    @rx.event
    def copy_url(self, url: str):
        return [rx.set_clipboard(url), rx.toast("Webhook URL copied")]

    @rx.event
    def send_test(self, link_id: str):
        """A real alert through the whole path (route logic, queue, worker) — paper only."""
        uid = self._user_id()
        if uid is None:
            return rx.redirect(routes.LOGIN)
        with session_scope() as s:
            link = webhooks.get_link(s, uid, int(link_id))
            secret = webhooks.reveal_secret(s, uid, int(link_id))
        if not link.paper and settings().trading_mode != "paper":
            self.results[link_id] = "Test alerts are sent only to paper links."
            return None
        # The builder's first entry message when it is open on this link, else the seed
        # flow's (NIFTY CALL, ATM, nearest), filled as TradingView would fill it now.
        choices = self.choices if self.builder_link == link_id else _DEFAULT_CHOICES
        try:
            plan = messages.build(trade_from_choices(choices), secret)
        except AtsError as exc:
            self.results[link_id] = f"Not sent: {sentence(exc)}"
            return None
        body = messages.body_for_test_alert(plan, datetime.now(UTC))
        reply = alerts.receive(link.token, body, None, check_source=False)
        sent = plan.messages[0].name
        self.results[link_id] = f"Sent “{sent}”: {reply.status_code} {json.dumps(reply.body)}"
        return None
