"""Webhook links: what TradingView posts to, and what each alert trades."""

import reflex as rx

from ats_app.components.confirm import confirm_dialog
from ats_app.components.layout import app_page, form_error, form_message, submit_button
from ats_app.state.webhooks import WebhooksState


def _select(field: str, label: str, options: list[tuple[str, str]]) -> rx.Component:
    """One builder choice; every change rebuilds the messages below."""
    return rx.vstack(
        rx.text(label, size="2"),
        rx.el.select(
            *[rx.el.option(text, value=value) for value, text in options],
            value=WebhooksState.choices[field],
            on_change=lambda v: WebhooksState.set_choice(field, v),
            id=f"builder-{field}",
            style={"padding": "6px", "width": "100%"},
        ),
        spacing="1",
        width="100%",
    )


def _text_choice(field: str, label: str, placeholder: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2"),
        rx.input(
            value=WebhooksState.choices[field],
            on_change=lambda v: WebhooksState.set_choice(field, v),
            placeholder=placeholder,
            id=f"builder-{field}",
            width="100%",
        ),
        spacing="1",
        width="100%",
    )


_STRIKES = [("ATM", "ATM")] + [(f"{k}{n}", f"{k} {n}") for k in ("ITM", "OTM") for n in (1, 2, 3)]


def _message_block(m: rx.Var, i: rx.Var, link_id: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text(m["name"], weight="bold", size="2"),
            rx.text("→ Message box of ", m["where"], size="1", color="var(--gray-10)"),
            rx.spacer(),
            rx.button(
                "Copy", size="1", variant="soft",
                on_click=WebhooksState.copy_text(m["message"], m["name"] + " message"),
            ),
            align="center",
            width="100%",
            wrap="wrap",
        ),
        rx.code_block(
            m["message"],
            language="json",
            wrap_long_lines=True,
            id="message-" + link_id + "-" + i.to_string(),
            width="100%",
            custom_style={"margin": "0"},
        ),
        spacing="1",
        width="100%",
    )


def _builder(link_id: rx.Var) -> rx.Component:
    """What the link trades and how TradingView sends it → the messages to paste."""
    kind = WebhooksState.choices["kind"]
    return rx.vstack(
        rx.separator(width="100%"),
        rx.heading("TradingView alert messages", size="3"),
        rx.text(
            "Choose what this link trades and how TradingView sends it; paste each message "
            "below into its alert's Message box (the secret is in it).",
            size="2",
            color="var(--gray-11)",
        ),
        rx.grid(
            _select("kind", "Trades", [("option", "Index options (CALL→CE, PUT→PE)"),
                                       ("stock", "Stock (NSE cash)"), ("future", "Future")]),
            _select("send", "TradingView sends it from",
                    [("alertcondition", "Indicator alerts (alertcondition)"),
                     ("strategy", "Strategy order fills")]),
            rx.cond(
                kind == "option",
                _select("underlying", "Underlying",
                        [(u, u) for u in ("NIFTY", "BANKNIFTY", "FINNIFTY")]),
            ),
            rx.cond(kind == "option", _select("strike", "Strike", _STRIKES)),
            rx.cond(
                kind == "option",
                _select("expiry", "Expiry", [("nearest", "Nearest"), ("next", "Next")]),
            ),
            rx.cond(kind == "stock", _text_choice("symbol", "NSE symbol", "e.g. RELIANCE")),
            rx.cond(
                kind == "future",
                _text_choice("tradingsymbol", "Contract (tradingsymbol)", "e.g. NIFTY29DEC26FUT"),
            ),
            rx.cond(
                kind == "future",
                _select("exchange", "Exchange", [(e, e) for e in ("NFO", "BFO", "MCX", "CDS")]),
            ),
            _text_choice("lots", "Lots per order", "1"),
            columns=rx.breakpoints(initial="1", sm="2", md="3"),
            spacing="3",
            width="100%",
        ),
        rx.cond(
            kind == "future",
            rx.text(
                "A future's contract expires: update the message when you roll it.",
                size="1",
                color="var(--gray-10)",
            ),
        ),
        form_error(WebhooksState.builder_error),
        rx.el.ol(
            rx.foreach(WebhooksState.plan_steps, lambda step: rx.el.li(step)),
            style={"paddingLeft": "1.4em", "fontSize": "14px", "margin": "0",
                   "listStyleType": "decimal"},
            id="builder-steps-" + link_id,
        ),
        rx.foreach(WebhooksState.plan_messages, lambda m, i: _message_block(m, i, link_id)),
        rx.cond(
            WebhooksState.plan_pine != "",
            rx.el.details(
                rx.el.summary("Pine Script (v6) with these alerts", style={"cursor": "pointer"}),
                rx.button(
                    "Copy Pine Script", size="1", variant="soft",
                    on_click=WebhooksState.copy_text(WebhooksState.plan_pine, "Pine Script"),
                    margin_y="6px",
                ),
                rx.code_block(
                    WebhooksState.plan_pine,
                    language="javascript",  # close enough to highlight Pine's syntax
                    wrap_long_lines=True,
                    id="pine-" + link_id,
                    width="100%",
                ),
                style={"width": "100%"},
            ),
        ),
        spacing="3",
        width="100%",
        id="builder-" + link_id,
    )


def _link_card(row: rx.Var) -> rx.Component:
    link_id = row["id"]
    revealed = WebhooksState.revealed.contains(link_id)
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(row["name"], size="4"),
                rx.badge(row["mode"], color_scheme=rx.cond(row["mode"] == "LIVE", "red", "amber")),
                rx.badge(
                    row["enabled"],
                    color_scheme=rx.cond(row["enabled"] == "enabled", "green", "gray"),
                ),
                rx.spacer(),
                rx.button(
                    "Edit", size="1", variant="soft", on_click=WebhooksState.start_edit(link_id)
                ),
                rx.button(
                    "Delete",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=WebhooksState.ask_delete(link_id),
                ),
                width="100%",
                align="center",
                wrap="wrap",
            ),
            rx.text("Strategy: ", row["strategy"], " · Accounts: ", row["accounts"], size="2"),
            rx.text(row["rules"], size="2"),
            rx.hstack(
                rx.code(row["url"], id="url-" + link_id, size="2", word_break="break-all"),
                rx.button(
                    "Copy",
                    size="1",
                    on_click=WebhooksState.copy_url(row["url"]),
                    id="copy-" + link_id,
                ),
                rx.button(
                    "New URL", size="1", variant="soft", on_click=WebhooksState.rotate_url(link_id)
                ),
                align="center",
                wrap="wrap",
            ),
            rx.hstack(
                rx.text("Secret: ", size="2"),
                rx.cond(
                    revealed,
                    rx.code(WebhooksState.revealed[link_id], id="secret-" + link_id),
                    rx.text("••••••••", size="2"),
                ),
                rx.cond(
                    revealed,
                    rx.button(
                        "Hide", size="1", variant="soft", on_click=WebhooksState.hide(link_id)
                    ),
                    rx.button(
                        "Reveal + alert messages",
                        size="1",
                        variant="soft",
                        on_click=WebhooksState.reveal(link_id),
                        id="reveal-" + link_id,
                    ),
                ),
                rx.button(
                    "Rotate secret",
                    size="1",
                    variant="soft",
                    color_scheme="orange",
                    on_click=WebhooksState.rotate(link_id),
                ),
                rx.button(
                    "Send test alert",
                    size="1",
                    on_click=WebhooksState.send_test(link_id),
                    id="test-alert-" + link_id,
                ),
                align="center",
                wrap="wrap",
            ),
            rx.cond(WebhooksState.builder_link == link_id, _builder(link_id)),
            rx.text(WebhooksState.results.get(link_id, ""), size="2", id="result-" + link_id),
            spacing="2",
            width="100%",
        ),
        width="100%",
    )


def _account_input(acc: rx.Var) -> rx.Component:
    return rx.hstack(
        rx.text(acc[1], size="2", min_width="140px"),
        rx.input(
            name="mult_" + acc[0],
            type="number",
            min=0,
            max=100,
            width="90px",
            placeholder="0 = off",
            id="mult-" + acc[0],
            default_value=WebhooksState.edit_multipliers.get(acc[0], ""),
            key=WebhooksState.editing_id.to_string() + acc[0],
        ),
        rx.text("lots ×", size="1", color="var(--gray-10)"),
        align="center",
    )


def _field(label: str, name: str, placeholder: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2"),
        rx.input(
            name=name,
            id=f"link-{name}",
            placeholder=placeholder,
            default_value=WebhooksState.edit.get(name, ""),
            key=WebhooksState.editing_id.to_string() + name,
            width="100%",
        ),
        spacing="1",
        width="100%",
    )


def _checkbox(name: str, edit_key: str, label: str, new_link_default: bool) -> rx.Component:
    """A link flag: the edited link's value when editing, else the default for a new link."""
    return rx.el.label(
        rx.el.input(
            type="checkbox",
            name=name,
            id=f"link-{name}",
            default_checked=rx.cond(
                WebhooksState.editing_id > 0,
                WebhooksState.edit.get(edit_key, "") == "1",
                new_link_default,
            ),
            key=WebhooksState.editing_id.to_string() + name,
        ),
        label,
    )


def _form() -> rx.Component:
    k = WebhooksState.editing_id.to_string()
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading(
                    rx.cond(WebhooksState.editing_id > 0, "Edit webhook link", "New webhook link"),
                    size="4",
                ),
                rx.grid(
                    _field("Name", "name", "e.g. NIFTY breakout"),
                    rx.vstack(
                        rx.text("Strategy", size="2"),
                        rx.el.select(
                            rx.el.option("— none —", value=""),
                            rx.foreach(
                                WebhooksState.strategy_options,
                                lambda o: rx.el.option(o[1], value=o[0]),
                            ),
                            name="strategy_id",
                            id="link-strategy",
                            default_value=WebhooksState.edit.get("strategy_id", ""),
                            key=k + "s",
                            style={"padding": "6px", "width": "100%"},
                        ),
                        spacing="1",
                        width="100%",
                    ),
                    _field("Stop-loss %", "sl", "e.g. 20 (empty or 0: off)"),
                    _field("Target %", "target", "e.g. 40 (empty or 0: off)"),
                    _field("Trailing stop %", "tsl", "e.g. 10 (empty or 0: off)"),
                    columns=rx.breakpoints(initial="1", sm="2"),
                    spacing="3",
                    width="100%",
                ),
                rx.text(
                    "Accounts (lot multiplier per account; leave 0 or empty to skip):", size="2"
                ),
                rx.cond(
                    WebhooksState.account_options.length() > 0,
                    rx.vstack(rx.foreach(WebhooksState.account_options, _account_input)),
                    rx.text(
                        "No broker account: the link can only paper trade.",
                        size="2",
                        color="var(--gray-10)",
                    ),
                ),
                rx.hstack(
                    _checkbox("paper", "paper", " Paper trading (no real orders)", True),
                    _checkbox("enabled", "is_enabled", " Enabled", True),
                    _checkbox(
                        "queue_outside_hours",
                        "queue",
                        " Queue entries outside market hours until the open",
                        False,
                    ),
                    _checkbox(
                        "exits_by_signal",
                        "exit_signal",
                        " My alerts send the exits (exit/sell)",
                        False,
                    ),
                    spacing="5",
                    wrap="wrap",
                ),
                rx.vstack(
                    _checkbox("broker_stop", "broker_stop", " Stop at broker", False),
                    rx.text(
                        "Each position's stop-loss also rests in the broker's order book as a "
                        "SELL stop-loss order (Angel One; simulated on paper), moved up with "
                        "the trailing stop, so it stays protected even while this server is "
                        "down. Needs a stop-loss or trailing stop %.",
                        size="1",
                        color="var(--gray-10)",
                        id="link-broker-stop-help",
                    ),
                    spacing="1",
                ),
                form_error(WebhooksState.error),
                form_message(WebhooksState.message),
                rx.hstack(
                    submit_button("Save link", "link-save"),
                    rx.cond(
                        WebhooksState.editing_id > 0,
                        rx.button(
                            "Cancel",
                            type="button",
                            variant="soft",
                            on_click=WebhooksState.cancel_edit,
                        ),
                    ),
                ),
                spacing="3",
                width="100%",
            ),
            on_submit=WebhooksState.save,
            reset_on_submit=False,
            id="link-form",
            width="100%",
        ),
        width="100%",
    )


def webhooks_page() -> rx.Component:
    return app_page(
        rx.vstack(
            rx.heading("Webhook links", size="6"),
            rx.cond(
                WebhooksState.rows.length() > 0,
                rx.vstack(rx.foreach(WebhooksState.rows, _link_card), width="100%", id="links"),
                rx.text("No webhook link yet.", id="links-empty"),
            ),
            _form(),
            confirm_dialog(
                WebhooksState.confirm_delete > 0,
                "Delete this webhook link?",
                "Alerts sent to its URL will be refused (404).",
                WebhooksState.delete,
                WebhooksState.cancel_delete,
                "Delete",
                "delete-link",
            ),
            spacing="4",
            width="100%",
        )
    )
