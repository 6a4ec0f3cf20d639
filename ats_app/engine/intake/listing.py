"""An entry alert's instrument checked at the webhook, from the scrip master held in memory.

An unknown symbol, a strike or an expiry that is not listed used to be answered 202 and fail
only inside the job: TradingView's log said "accepted" and the trader learnt otherwise later.
The ack now resolves as much as it can without a price (`contracts.check_listed`) against
each master its link's jobs resolve on, and answers 422 naming the field. It uses only a
master this process already holds: one it does not is loaded in the background, and the
alert is accepted as before (its job resolves it), so the ack never waits for a download.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from ats_app.engine.execution import contracts
from ats_app.engine.execution.signals import AlertSignal
from ats_app.engine.intake.link_cache import LinkFacts
from ats_app.engine.store.models import BrokerAccount, WebhookLinkAccount


def servers_of(session: Session, link_id: int) -> tuple[str | None, ...]:
    """The servers whose masters the link's jobs resolve on: each account's (None: Angel's),
    or, with no account (paper), the paper master's, as the job picks them."""
    urls = session.exec(
        select(BrokerAccount.base_url).distinct()
        .join(WebhookLinkAccount, col(WebhookLinkAccount.account_id) == col(BrokerAccount.id))
        .where(WebhookLinkAccount.link_id == link_id)
    ).all()
    if urls:
        return tuple(sorted(set(urls), key=lambda u: u or ""))
    from ats_app.engine.execution.entry import paper_master_server

    return (paper_master_server(),)


def check(facts: LinkFacts, signal: AlertSignal, now: datetime) -> None:
    """Raise ValidationError (a field named) when a master in memory says the entry cannot
    resolve; warm any master not in memory yet. Exits are never checked."""
    if not signal.is_entry:
        return
    for server in facts.servers:
        index = contracts.cached_index(server)
        if index is None:
            contracts.warm_index(server)
            continue
        contracts.check_listed(signal, index, now)
