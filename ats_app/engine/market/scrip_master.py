"""Download and cache Angel's scrip master (the I/O edge of `instruments.py`).

Where from: `SCRIP_MASTER_URL` (Angel's address by default), or, for an account pointed at a
SmartAPI-compatible server (`--base-url`, e.g. the simulator), that server's same path.

Caching: one file per URL under `<data_dir>/scrip_master/` (the simulator's master and
Angel's must never overwrite each other), with a small JSON sidecar recording when and from
where it was fetched. A copy is fresh until the next daily refresh boundary (08:00 IST: Angel
republishes the file every morning before the market opens), so every process downloads at
most once a day. Writes go to a temp file and `os.replace`, so concurrent workers refreshing
at the same moment never see a half-written master.

Sanity checks on a download: HTTP 200, between `min_bytes` and `max_bytes`, a JSON array of
at least `min_rows` objects carrying Angel's keys, and not less than half the rows of the copy
it replaces (a truncated publication). When a refresh fails, a cached copy younger than
`max_stale` is used (the morning download hiccupping must not stop trading on yesterday's
contracts); otherwise `ScripMasterUnavailable` says what was tried and why it failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ats_app.engine.core.errors import AtsError
from ats_app.engine.market.instruments import IST, InstrumentIndex, parse_master

__all__ = [
    "DEFAULT_SCRIP_MASTER_URL",
    "SCRIP_MASTER_PATH",
    "CachePolicy",
    "ScripMasterUnavailable",
    "ensure_master",
    "load_index",
    "load_rows",
    "master_url",
]

SCRIP_MASTER_PATH = "/OpenAPI_File/files/OpenAPIScripMaster.json"
DEFAULT_SCRIP_MASTER_URL = f"https://margincalculator.angelbroking.com{SCRIP_MASTER_PATH}"
REQUIRED_KEYS = frozenset({"token", "symbol", "name", "expiry", "strike", "lotsize",
                           "instrumenttype", "exch_seg", "tick_size"})
log = logging.getLogger(__name__)


class ScripMasterUnavailable(AtsError):
    """No usable scrip master: download failed and no recent enough cached copy."""


@dataclass(frozen=True)
class CachePolicy:
    refresh_at: time = time(8, 0)  # IST; a copy fetched before today's boundary is stale
    max_stale: timedelta = timedelta(days=2)  # oldest copy used when a refresh fails
    min_bytes: int = 10_000  # Angel's file is tens of MB; a few KB is an error page
    max_bytes: int = 500_000_000  # refuse to fill the disk from a misbehaving server
    min_rows: int = 50
    timeout: float = 60.0


def master_url(base_url: str | None = None) -> str:
    """The master's URL: the account's SmartAPI-compatible server, else SCRIP_MASTER_URL."""
    if base_url and base_url.strip():
        return base_url.strip().rstrip("/") + SCRIP_MASTER_PATH
    return os.environ.get("SCRIP_MASTER_URL", "").strip() or DEFAULT_SCRIP_MASTER_URL


def cache_file(url: str, data_dir: Path) -> Path:
    # Host for humans reading the directory, hash so two servers on one host stay apart.
    host = (urlsplit(url).hostname or "local").replace(":", "_")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return data_dir / "scrip_master" / f"{host}-{digest}.json"


def _meta_file(path: Path) -> Path:
    return path.with_suffix(".meta.json")


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(_meta_file(path).read_text())
        meta["fetched_at"] = datetime.fromisoformat(meta["fetched_at"])
        return meta if path.exists() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_boundary(now: datetime, refresh_at: time) -> datetime:
    """The most recent daily refresh moment at or before `now` (IST)."""
    local = now.astimezone(IST)
    boundary = datetime.combine(local.date(), refresh_at, IST)
    return boundary if boundary <= local else boundary - timedelta(days=1)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(IST)
    return now if now.tzinfo else now.replace(tzinfo=IST)  # naive means IST, as elsewhere


def _download(url: str, dest: Path, policy: CachePolicy, client: httpx.Client | None) -> int:
    """Stream `url` into `dest`; returns the byte count. Raises ScripMasterUnavailable."""
    own = client is None
    http = client or httpx.Client(timeout=policy.timeout, follow_redirects=True)
    size = 0
    try:
        with http.stream("GET", url) as resp, dest.open("wb") as fh:
            if resp.status_code != 200:
                raise ScripMasterUnavailable(f"HTTP {resp.status_code}")
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > policy.max_bytes:
                    raise ScripMasterUnavailable(f"larger than {policy.max_bytes} bytes")
                fh.write(chunk)
    except httpx.HTTPError as exc:
        raise ScripMasterUnavailable(f"{type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            http.close()
    if size < policy.min_bytes:
        raise ScripMasterUnavailable(f"only {size} bytes (expected at least {policy.min_bytes})")
    return size


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The master's rows from a file; ScripMasterUnavailable if it is not Angel's format."""
    try:
        rows = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ScripMasterUnavailable(f"cannot read scrip master {path}: {exc}") from exc
    except ValueError as exc:
        raise ScripMasterUnavailable(f"scrip master {path} is not valid JSON: {exc}") from exc
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
        raise ScripMasterUnavailable(f"scrip master {path} is not a JSON array of rows")
    missing = REQUIRED_KEYS - rows[0].keys()
    if missing:
        raise ScripMasterUnavailable(
            f"scrip master {path} rows lack {', '.join(sorted(missing))}")
    return rows


def _validate(tmp: Path, previous_rows: int | None, policy: CachePolicy) -> int:
    try:
        rows = len(load_rows(tmp))
    except ScripMasterUnavailable as exc:
        raise ScripMasterUnavailable(str(exc).replace(str(tmp), "download")) from None
    if rows < policy.min_rows:
        raise ScripMasterUnavailable(f"only {rows} rows (expected at least {policy.min_rows})")
    if previous_rows and rows < previous_rows // 2:
        raise ScripMasterUnavailable(
            f"{rows} rows, under half the {previous_rows} of the cached copy (truncated?)")
    return rows


def _refresh(url: str, path: Path, meta: dict[str, Any] | None, now: datetime,
             policy: CachePolicy, client: httpx.Client | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        size = _download(url, tmp, policy, client)
        rows = _validate(tmp, meta.get("rows") if meta else None, policy)
        new_meta = {"url": url, "fetched_at": now.isoformat(), "bytes": size, "rows": rows}
        # Meta after data: a crash between the two leaves a stale meta, so the next call
        # simply downloads again rather than trusting a file it cannot date.
        os.replace(tmp, path)
        _meta_file(path).write_text(json.dumps(new_meta))
    finally:
        tmp.unlink(missing_ok=True)


def ensure_master(
    *,
    base_url: str | None = None,
    url: str | None = None,
    data_dir: Path | None = None,
    now: datetime | None = None,
    policy: CachePolicy | None = None,
    client: httpx.Client | None = None,
) -> Path:
    """Path of a usable master file, downloading it when the cached copy is stale."""
    policy = policy or CachePolicy()
    url = url or master_url(base_url)
    if data_dir is None:
        from ats_app.engine.core.config import settings

        data_dir = settings().data_dir
    now = _now(now)
    path = cache_file(url, Path(data_dir))
    meta = _read_meta(path)
    if meta and meta["fetched_at"] >= last_boundary(now, policy.refresh_at):
        return path
    try:
        _refresh(url, path, meta, now, policy, client)
        return path
    except ScripMasterUnavailable as exc:
        if meta and now - meta["fetched_at"] <= policy.max_stale:
            log.warning("scrip master refresh from %s failed (%s); using the copy fetched %s",
                        url, exc, meta["fetched_at"].isoformat())
            return path
        cached = (f"; cached copy from {meta['fetched_at']:%Y-%m-%d %H:%M} is too old"
                  if meta else "; no cached copy")
        raise ScripMasterUnavailable(
            f"scrip master unavailable from {url}: {exc}{cached}") from exc


def load_index(*, master: Path | None = None, **kwargs: Any) -> InstrumentIndex:
    """An index over `master` (a file) or over the cached/downloaded master."""
    path = master if master is not None else ensure_master(**kwargs)
    parsed = parse_master(load_rows(path))
    if parsed.skipped:
        log.info("scrip master %s: skipped %d unparseable rows", path, parsed.skipped)
    return InstrumentIndex(parsed.instruments)
