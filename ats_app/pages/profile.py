"""Profile: who you are, change password, log out."""

import reflex as rx

from ats_app.components.layout import app_page, form_error, form_message, submit_button
from ats_app.state.auth import AuthState
from ats_app.state.settings import SettingsState
from ats_app.state.telegram import TelegramState


def _limit(label: str, name: str, hint: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2"),
        rx.input(
            name=name,
            id=f"limit-{name}",
            placeholder=hint,
            width="100%",
            default_value=SettingsState.limits.get(name, ""),
            key=SettingsState.limits.get(name, "") + name,
        ),
        spacing="1",
        width="100%",
    )


def _risk_card() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("Risk limits", size="4"),
                rx.text(
                    "Enforced by the engine on every entry; exits are never blocked. "
                    "Leave a box empty for no limit.",
                    size="2",
                    color="var(--gray-11)",
                ),
                rx.grid(
                    _limit("Max open positions", "max_open_positions", "no limit"),
                    _limit("Max lots per order", "max_lots_per_order", "no limit"),
                    _limit("Max orders per day", "max_orders_per_day", "no limit"),
                    _limit(
                        "Daily loss limit ₹ (realized + unrealized)", "daily_loss_limit", "no limit"
                    ),
                    _limit("Intraday square-off (IST, HH:MM)", "square_off_at", "15:15"),
                    columns=rx.breakpoints(initial="1", sm="2"),
                    spacing="3",
                    width="100%",
                ),
                rx.el.label(
                    rx.el.input(
                        type="checkbox",
                        name="exit_on_loss_limit",
                        default_checked=SettingsState.exit_on_loss,
                        key=SettingsState.exit_on_loss.to_string(),
                    ),
                    " Exit all positions when the daily loss limit is hit",
                ),
                rx.button("Save limits", type="submit", id="limits-save"),
                spacing="3",
                width="100%",
            ),
            on_submit=SettingsState.save_limits,
            reset_on_submit=False,
            width="100%",
        ),
        width="100%",
    )


def _target_row(t: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.badge(t["service"]),
        rx.text(t["label"]),
        rx.code(t["hint"]),
        rx.button(
            "Remove",
            size="1",
            variant="soft",
            color_scheme="red",
            on_click=SettingsState.remove_target(t["id"]),
        ),
        align="center",
        wrap="wrap",
    )


def _event_row(e: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.switch(checked=e[2] == "on", on_change=lambda _: SettingsState.toggle_event(e[0])),
        rx.text(e[1], size="2"),
        align="center",
    )


def _notify_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Notifications", size="4"),
            rx.text(
                "Telegram, e-mail and more through Apprise URLs, e.g. tgram://bot_token/"
                "chat_id or mailtos://user:password@gmail.com. Stored encrypted; shown "
                "masked.",
                size="2",
                color="var(--gray-11)",
            ),
            rx.foreach(SettingsState.targets, _target_row),
            rx.form(
                rx.hstack(
                    rx.input(
                        name="url",
                        placeholder="Apprise URL",
                        type="password",
                        width="320px",
                        id="notify-url",
                    ),
                    rx.input(name="label", placeholder="Label (optional)", id="notify-label"),
                    rx.button("Add target", type="submit"),
                    rx.button(
                        "Send test",
                        type="button",
                        variant="soft",
                        on_click=SettingsState.test_targets,
                    ),
                    wrap="wrap",
                ),
                on_submit=SettingsState.add_target,
                reset_on_submit=False,
                id="notify-form",
            ),
            rx.text("Send me:", size="2", weight="bold"),
            rx.foreach(SettingsState.events, _event_row),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _telegram_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Telegram control", size="4"),
            rx.text("Run your bot from your phone: /status, /positions, /pnl, /orders, /start, "
                    "/stop and /kill (asks you to confirm). Only the chat you link here is "
                    "answered.", size="2", color="var(--gray-11)"),
            rx.cond(
                TelegramState.tg_linked != "",
                rx.hstack(
                    rx.text("Linked: ", rx.text.strong(TelegramState.tg_linked), size="2",
                            id="tg-linked"),
                    rx.button("Unlink", size="1", variant="soft", color_scheme="red",
                              on_click=TelegramState.unlink_telegram, id="tg-unlink"),
                    align="center", wrap="wrap",
                ),
                rx.text("No chat linked.", size="2", id="tg-linked"),
            ),
            rx.cond(
                TelegramState.tg_enabled,
                rx.button("Get a link code", variant="soft",
                          on_click=TelegramState.new_telegram_code, id="tg-code-button"),
                rx.text("Off on this server: the operator has not set TELEGRAM_BOT_TOKEN.",
                        size="2", color="var(--gray-11)", id="tg-off"),
            ),
            rx.cond(
                TelegramState.tg_code != "",
                rx.text("Send ", rx.code("/link " + TelegramState.tg_code, id="tg-code"),
                        " to the ATS bot in Telegram within 10 minutes. The code works once.",
                        size="2"),
            ),
            rx.cond(TelegramState.tg_error != "",
                    rx.callout(TelegramState.tg_error, icon="triangle_alert", color_scheme="red",
                               id="tg-error")),
            spacing="3",
            width="100%",
        ),
        width="100%",
        on_mount=TelegramState.load_telegram,
    )


def profile_page() -> rx.Component:
    return app_page(
        rx.heading("Profile", size="6"),
        rx.card(
            rx.vstack(
                rx.text("Name: ", rx.text.strong(AuthState.display_name), id="profile-name"),
                rx.text("Username: ", rx.code(AuthState.username)),
                rx.cond(AuthState.is_admin, rx.badge("administrator", color_scheme="indigo")),
                rx.button("Log out", on_click=AuthState.logout, variant="soft"),
            ),
            max_width="420px",
            margin_y="12px",
        ),
        rx.vstack(
            form_error(SettingsState.settings_error),
            form_message(SettingsState.settings_message),
            _risk_card(),
            _notify_card(),
            _telegram_card(),
            width="100%",
            spacing="3",
            margin_bottom="12px",
        ),
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading("Change password", size="4"),
                    rx.input(
                        name="current_password",
                        type="password",
                        id="current_password",
                        placeholder="Current password",
                        width="100%",
                    ),
                    rx.input(
                        name="new_password",
                        type="password",
                        id="new_password",
                        placeholder="New password (at least 8 characters)",
                        width="100%",
                    ),
                    rx.input(
                        name="confirm",
                        type="password",
                        id="confirm",
                        placeholder="Repeat new password",
                        width="100%",
                    ),
                    form_error(AuthState.error),
                    form_message(AuthState.message),
                    submit_button("Change password", "change-password"),
                    spacing="3",
                    width="100%",
                ),
                on_submit=AuthState.change_password,
                reset_on_submit=True,
            ),
            max_width="420px",
        ),
    )
