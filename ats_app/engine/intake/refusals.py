"""Refused requests to a user's webhook link, kept for the Alerts page.

A refusal (wrong secret, a field TradingView filled wrongly, a stale alert, over the rate...)
used to be findable only in the audit log's JSON. Each one that names a known link is now
also a `RefusedAlert` row: what was refused, why, and the body as sent with every secret
masked, so the trader sees what TradingView actually posted without the page ever holding a
secret. Requests naming no link (404) or from a source not allowed (403) belong to no user
and stay in the audit log only.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from typing import Any

from ats_app.engine.store import audit
from ats_app.engine.store.db import session_scope
from ats_app.engine.store.models import RefusedAlert

MASK = "•••"
MAX_BODY_CHARS = 4000  # enough for any real alert; a flood of junk must not fill the table
# A value shorter than this is masked only where it is the `secret` field's value: replacing
# "buy" everywhere a wrong secret said "buy" would hide the body instead of the secret.
MIN_GLOBAL_MASK = 6
# "secret": "…" (any case, the string possibly cut short) or a bare value (a number).
_SECRET_FIELD = re.compile(r'("secret"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)', re.IGNORECASE)


def _secret_values(text: str) -> set[str]:
    """Every string under a `secret` key at any depth, as decoded and as JSON spells it (a
    secret written with \\u escapes is still the secret)."""
    found: set[str] = set()

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        for key, value in pairs:
            if key.lower() == "secret" and isinstance(value, str):
                found.add(value)
        return dict(pairs)

    with contextlib.suppress(ValueError, RecursionError):  # not JSON: the pattern masks it
        json.loads(text, object_pairs_hook=hook)
    return found | {json.dumps(v)[1:-1] for v in found}


def mask_body(raw: bytes | None, secrets: Iterable[str | bytes] = ()) -> str:
    """The body as text with the link's secret and every `secret` field's value replaced by
    MASK, then cut to MAX_BODY_CHARS (masked first: a cut never leaves half a secret)."""
    if raw is None:
        return ""
    text = raw.decode("utf-8", errors="replace")
    known = {s.decode() if isinstance(s, bytes) else s for s in secrets}
    for value in sorted(known | _secret_values(text), key=len, reverse=True):
        if len(value) >= MIN_GLOBAL_MASK:
            text = text.replace(value, MASK)
    text = _SECRET_FIELD.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    if len(text) > MAX_BODY_CHARS:
        text = text[:MAX_BODY_CHARS] + "…"
    return text


def record(*, user_id: int, link_id: int, code: int, error: str, field: str | None,
           body: str, source_ip: str | None, action: str = "webhook.refused",
           **detail: Any) -> None:
    """The refusal's audit event and its Alerts-page row, in one transaction of their own
    (the request's has rolled back). A duplicate (200) is kept the same way."""
    with session_scope() as s:
        s.add(RefusedAlert(user_id=user_id, link_id=link_id, status_code=code,
                           error=error[:500], field=field[:64] if field else None, body=body,
                           source_ip=source_ip))
        audit.record(s, action, user_id=user_id, subject=str(link_id), status=code,
                     error=error, field=field, source_ip=source_ip, **detail)
