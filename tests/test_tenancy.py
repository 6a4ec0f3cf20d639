"""One user can never read or change another user's rows."""

from __future__ import annotations

import pytest

from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.execution import order_history
from ats_app.engine.risk import bot
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import Order
from ats_app.engine.tenants import accounts, strategies, users, webhooks

TOTP = "JBSWY3DPEHPK3PXP"


@pytest.fixture
def two_users(database_url: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with session_scope() as s:
        for name in ("alice", "bob"):
            uid = users.create_user(s, name, "password123", name.title(), "X").id
            acc = accounts.add_account(
                s,
                uid,
                label="main",
                client_id=f"{name[0].upper()}1",
                api_key="k",
                pin="1234",
                totp_secret=TOTP,
            )
            strat = strategies.create_strategy(s, uid, "breakout")
            link, _ = webhooks.create_link(
                s,
                uid,
                name="nifty",
                accounts=[webhooks.LinkAccount(acc.id, 1)],
                strategy_id=strat.id,
                stop_loss_pct=1,
                target_pct=2,
                trailing_stop_pct=1,
            )
            s.add(
                Order(
                    user_id=uid,
                    client_order_id=f"ord-{name}",
                    exchange="NFO",
                    symbol="NIFTY",
                    symbol_token="1",
                    side="BUY",
                    quantity=75,
                )
            )
            out[name] = {"user": uid, "account": acc.id, "strategy": strat.id, "link": link.id}
    return out


def test_listings_show_only_own_rows(two_users: dict[str, dict[str, int]]) -> None:
    a, b = two_users["alice"], two_users["bob"]
    with session_scope() as s:
        assert [x.id for x in accounts.list_accounts(s, a["user"])] == [a["account"]]
        assert [x.id for x in strategies.list_strategies(s, a["user"])] == [a["strategy"]]
        assert [x.id for x in webhooks.list_links(s, a["user"])] == [a["link"]]
        assert [o.client_order_id for o in order_history.list_orders(s, b["user"])] == ["ord-bob"]


@pytest.mark.parametrize(
    "action",
    [
        pytest.param(
            lambda s, me, other: accounts.get_account(s, me, other["account"]), id="read-account"
        ),
        pytest.param(
            lambda s, me, other: accounts.credentials(s, me, other["account"]), id="decrypt-account"
        ),
        pytest.param(
            lambda s, me, other: accounts.update_account(s, me, other["account"], label="pwn"),
            id="edit-account",
        ),
        pytest.param(
            lambda s, me, other: accounts.delete_account(s, me, other["account"]),
            id="delete-account",
        ),
        pytest.param(
            lambda s, me, other: strategies.update_strategy(s, me, other["strategy"], "x", ""),
            id="edit-strategy",
        ),
        pytest.param(
            lambda s, me, other: strategies.delete_strategy(s, me, other["strategy"]),
            id="delete-strategy",
        ),
        pytest.param(lambda s, me, other: webhooks.get_link(s, me, other["link"]), id="read-link"),
        pytest.param(
            lambda s, me, other: webhooks.reveal_secret(s, me, other["link"]), id="reveal-secret"
        ),
        pytest.param(
            lambda s, me, other: webhooks.rotate_token(s, me, other["link"]), id="rotate-token"
        ),
        pytest.param(
            lambda s, me, other: webhooks.delete_link(s, me, other["link"]), id="delete-link"
        ),
    ],
)
def test_other_users_rows_are_not_found(two_users: dict[str, dict[str, int]], action) -> None:
    me, other = two_users["alice"]["user"], two_users["bob"]
    with pytest.raises(NotFound), session_scope() as s:
        action(s, me, other)
    # ...and bob's rows are unchanged.
    with session_scope() as s:
        assert accounts.get_account(s, other["user"], other["account"]).label == "main"
        assert strategies.get_strategy(s, other["user"], other["strategy"]).name == "breakout"
        assert webhooks.get_link(s, other["user"], other["link"]).id == other["link"]


def test_link_cannot_use_another_users_account_or_strategy(
    two_users: dict[str, dict[str, int]],
) -> None:
    me, other = two_users["alice"]["user"], two_users["bob"]
    with pytest.raises(ValidationError) as err, session_scope() as s:
        webhooks.create_link(
            s,
            me,
            name="steal",
            accounts=[webhooks.LinkAccount(other["account"], 1)],
            strategy_id=None,
            stop_loss_pct=1,
            target_pct=None,
            trailing_stop_pct=None,
            paper=False,
        )
    assert err.value.field == "accounts"
    with pytest.raises(ValidationError) as err, session_scope() as s:
        webhooks.create_link(
            s,
            me,
            name="steal",
            accounts=[],
            strategy_id=other["strategy"],
            stop_loss_pct=1,
            target_pct=None,
            trailing_stop_pct=None,
        )
    assert err.value.field == "strategy_id"


def test_bot_state_is_per_user(two_users: dict[str, dict[str, int]]) -> None:
    a, b = two_users["alice"]["user"], two_users["bob"]["user"]
    with session_scope() as s:
        bot.set_running(s, a, True)
    with session_scope() as s:
        assert bot.is_running(s, a) and not bot.is_running(s, b)
