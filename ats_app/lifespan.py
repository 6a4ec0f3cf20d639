"""What the backend does on start and stop (registered as a Reflex lifespan task)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ats_app.engine.core.config import settings
from ats_app.engine.services.processes import freeze_startup_heap
from ats_app.engine.services.supervisor import Supervisor
from ats_app.engine.store import db
from ats_app.engine.tenants.bootstrap import account_from_env

log = logging.getLogger("ats.lifespan")


def _startup() -> Supervisor | None:
    cfg = settings()
    if not cfg.is_prod:
        # Development: a fresh checkout works without a separate migrate step. Production
        # runs `cli db upgrade` once per deploy instead of once per backend worker.
        db.upgrade()
    with db.session_scope() as s:
        account_from_env(s, cfg)
    supervisor = None
    if cfg.spawn_services:
        supervisor = Supervisor(cfg)
        supervisor.start()
    _recover_alerts()
    return supervisor


def _recover_alerts() -> None:
    """Alerts accepted before a crash or a Redis restart get their jobs back."""
    from ats_app.engine.execution.recovery import requeue_lost_alerts

    try:
        requeue_lost_alerts()
    except Exception:
        log.exception("could not re-enqueue lost alerts at startup")


@asynccontextmanager
async def services() -> AsyncIterator[None]:
    supervisor = await asyncio.to_thread(_startup)
    freeze_startup_heap()  # the app's pages and models, built by now, live as long as we do
    try:
        yield
    finally:
        if supervisor is not None:
            await asyncio.to_thread(supervisor.stop)
