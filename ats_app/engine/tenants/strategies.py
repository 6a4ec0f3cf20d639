"""Strategies: the Pine Script strategies a user runs (named, described)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from ats_app.engine.core.errors import Conflict, NotFound, ValidationError
from ats_app.engine.store import audit
from ats_app.engine.store.models import Strategy


@dataclass(frozen=True)
class StrategyView:
    id: int
    name: str
    description: str


def _view(s: Strategy) -> StrategyView:
    assert s.id is not None
    return StrategyView(s.id, s.name, s.description)


def _clean(name: str, description: str) -> tuple[str, str]:
    n = name.strip()
    if not n:
        raise ValidationError("strategy name is required", "name")
    if len(n) > 100:
        raise ValidationError("strategy name must be at most 100 characters", "name")
    d = description.strip()
    if len(d) > 2000:
        raise ValidationError("description must be at most 2000 characters", "description")
    return n, d


def _owned(session: Session, user_id: int, strategy_id: int) -> Strategy:
    row = session.exec(
        select(Strategy).where(Strategy.id == strategy_id).where(Strategy.user_id == user_id)
    ).first()
    if row is None:
        raise NotFound(f"strategy {strategy_id} not found")
    return row


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"you already have a strategy named {name!r}") from exc


def create_strategy(
    session: Session, user_id: int, name: str, description: str = ""
) -> StrategyView:
    n, d = _clean(name, description)
    row = Strategy(user_id=user_id, name=n, description=d)
    session.add(row)
    _flush(session, n)
    audit.record(session, "strategy.created", user_id=user_id, subject=str(row.id), name=n)
    return _view(row)


def update_strategy(
    session: Session, user_id: int, strategy_id: int, name: str, description: str
) -> StrategyView:
    row = _owned(session, user_id, strategy_id)
    row.name, row.description = _clean(name, description)
    session.add(row)
    _flush(session, row.name)
    audit.record(session, "strategy.updated", user_id=user_id, subject=str(strategy_id))
    return _view(row)


def delete_strategy(session: Session, user_id: int, strategy_id: int) -> None:
    session.delete(_owned(session, user_id, strategy_id))
    audit.record(session, "strategy.deleted", user_id=user_id, subject=str(strategy_id))


def get_strategy(session: Session, user_id: int, strategy_id: int) -> StrategyView:
    return _view(_owned(session, user_id, strategy_id))


def list_strategies(session: Session, user_id: int) -> list[StrategyView]:
    rows = session.exec(
        select(Strategy).where(Strategy.user_id == user_id).order_by(Strategy.name)
    ).all()
    return [_view(r) for r in rows]
