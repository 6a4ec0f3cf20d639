"""Settings, read only from environment variables (optionally a `.env` file).

Development gets zero-configuration defaults (SQLite under `.data/`, an embedded Redis, a generated
encryption key). Production (`ATS_ENV=prod`) refuses to start without the secrets instead of
inventing them, because a generated key would silently make stored broker secrets unreadable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parents[3]

TRADING_MODES = ("paper", "live")
ENVIRONMENTS = ("dev", "prod")
MARKET_HOURS_MODES = ("nse", "always")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected a boolean (true/false), got {value!r}")


def _int(name: str, env: Mapping[str, str], default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


DEFAULT_FRONTEND_PORT = 3000
DEFAULT_BACKEND_PORT = 8000


def _port(name: str, env: Mapping[str, str]) -> int | None:
    if not env.get(name, "").strip():
        return None
    port = _int(name, env, 0)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be a port between 1 and 65535, got {port}")
    return port


def reflex_ports(env: Mapping[str, str]) -> dict[str, int]:
    """rx.Config's ports from FRONTEND_PORT / BACKEND_PORT (Reflex itself reads only
    REFLEX_-prefixed names). The backend's is always given, so a busy port stops the start:
    left unset, Reflex would move to the next free port and the webhook URLs built on it would
    point at nothing. The dashboard's only when set: a busy 3000 then moves to 3001, printed."""
    ports = {"backend_port": _port("BACKEND_PORT", env) or DEFAULT_BACKEND_PORT}
    if (frontend := _port("FRONTEND_PORT", env)) is not None:
        ports["frontend_port"] = frontend
    return ports


def backend_port(env: Mapping[str, str]) -> int:
    """The port the backend serves on. `reflex run` records the port it bound (from
    BACKEND_PORT or --backend-port) in REFLEX_BACKEND_PORT for itself and its children, so that
    wins; a CLI process outside it sees only BACKEND_PORT."""
    return (_port("REFLEX_BACKEND_PORT", env) or _port("BACKEND_PORT", env)
            or DEFAULT_BACKEND_PORT)


def _worker_nice(env: dict[str, str]) -> int:
    nice = _int("ATS_WORKER_NICE", env, 5)
    if not 0 <= nice <= 19:
        raise ConfigError(f"ATS_WORKER_NICE must be between 0 and 19, got {nice}")
    return nice


def _worker_threads(env: dict[str, str]) -> int:
    n = _int("ATS_WORKER_THREADS", env, 4)
    if not 1 <= n <= 64:
        raise ConfigError(f"ATS_WORKER_THREADS must be between 1 and 64, got {n}")
    return n


@dataclass(frozen=True)
class Settings:
    env: str
    trading_mode: str
    market_hours: str
    data_dir: Path
    database_url: str
    redis_url: str | None  # None: start an embedded redis-server (development only)
    secret_key: str  # Fernet key protecting broker secrets at rest
    public_base_url: str
    registration_open: bool
    spawn_services: bool  # backend starts worker/monitor/redis children (dev)
    simulator_enabled: bool  # dev services include the SmartAPI simulator (demo mode)
    simulator_port: int
    session_hours: int
    login_max_failures: int
    login_window_minutes: int
    webhook_rate_per_min: int
    webhook_max_bytes: int
    alert_max_age_seconds: int  # entries older than this are refused as stale (0: off)
    alert_dedup_window_seconds: int  # identical bodies without id/time within it = duplicate
    webhook_ip_allowlist: tuple[str, ...]  # empty: any source address
    trusted_proxies: tuple[str, ...]  # peers whose X-Forwarded-For is believed
    # Workers run at this niceness (0-19): when the CPU is short, the webhook's ack and the
    # monitor's stops go first — TradingView gives up on a slow ack and never resends, while a
    # queued job only waits.
    worker_nice: int
    # Jobs one worker process runs at once, one thread each: a job waiting on Angel's answer
    # holds a thread, not the process.
    worker_threads: int
    smartapi_client_id: str | None
    smartapi_api_key: str | None
    smartapi_password: str | None
    smartapi_totp: str | None

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def bootstrap_account_configured(self) -> bool:
        return bool(self.smartapi_client_id)


# TradingView's published webhook source addresses.
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _allowlist(value: str | None, is_prod: bool) -> tuple[str, ...]:
    """`tradingview` (default in prod), `off` (default in dev), or a comma-separated list."""
    raw = (value or "").strip().lower()
    if raw == "":
        return TRADINGVIEW_IPS if is_prod else ()
    if raw == "off":
        return ()
    if raw == "tradingview":
        return TRADINGVIEW_IPS
    return _csv(value)


def _secret_key(env: dict[str, str], data_dir: Path, is_prod: bool) -> str:
    key = env.get("ATS_SECRET_KEY", "").strip()
    if key:
        return key
    if is_prod:
        raise ConfigError(
            "ATS_SECRET_KEY is required when ATS_ENV=prod "
            "(generate one with: python -m ats_app.cli keygen)"
        )
    key_file = data_dir / "secret.key"
    if key_file.exists():
        return key_file.read_text().strip()
    from cryptography.fernet import Fernet

    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    # Create with 0600 from the start so the key is never world-readable, even briefly.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def _choice(env: dict[str, str], name: str, default: str, allowed: tuple[str, ...],
            aliases: dict[str, str] | None = None) -> str:
    value = env.get(name, "").strip().lower() or default
    value = (aliases or {}).get(value, value)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def environment() -> dict[str, str]:
    """os.environ after loading the project's `.env` (which never overrides a set variable)."""
    load_dotenv(PROJECT_ROOT / ".env", override=False)
    return dict(os.environ)


def load_settings(env: dict[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Build settings from `env` (default: os.environ, after loading `.env` if present)."""
    if env is None:
        env = environment() if dotenv else dict(os.environ)

    aliases = {"production": "prod", "development": "dev"}
    ats_env = _choice(env, "ATS_ENV", "dev", ENVIRONMENTS, aliases)
    is_prod = ats_env == "prod"
    mode = _choice(env, "TRADING_MODE", "paper", TRADING_MODES)
    hours = _choice(env, "MARKET_HOURS", "nse", MARKET_HOURS_MODES)
    if hours == "always" and mode != "paper":
        raise ConfigError("MARKET_HOURS=always is only accepted with TRADING_MODE=paper")

    data_dir = Path(env.get("ATS_DATA_DIR", "").strip() or PROJECT_ROOT / ".data")
    database_url = env.get("DATABASE_URL", "").strip()
    if not database_url:
        if is_prod:
            raise ConfigError("DATABASE_URL is required when ATS_ENV=prod")
        database_url = f"sqlite:///{data_dir / 'ats.db'}"
    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url is None and is_prod:
        raise ConfigError("REDIS_URL is required when ATS_ENV=prod")

    public_base_url = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/")
    if not public_base_url:
        if is_prod:
            raise ConfigError("PUBLIC_BASE_URL is required when ATS_ENV=prod")
        public_base_url = f"http://localhost:{backend_port(env)}"

    try:
        registration_open = _flag(env.get("ALLOW_REGISTRATION"), default=not is_prod)
        spawn_services = _flag(env.get("ATS_SPAWN_SERVICES"), default=not is_prod)
        simulator_enabled = _flag(env.get("ATS_SIMULATOR"), default=not is_prod)
    except ConfigError as exc:
        raise ConfigError(f"ALLOW_REGISTRATION/ATS_SPAWN_SERVICES/ATS_SIMULATOR: {exc}") from exc

    return Settings(
        env=ats_env,
        trading_mode=mode,
        market_hours=hours,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=_secret_key(env, data_dir, is_prod),
        public_base_url=public_base_url,
        registration_open=registration_open,
        spawn_services=spawn_services,
        simulator_enabled=simulator_enabled,
        simulator_port=_int("SIMULATOR_PORT", env, 9100),
        session_hours=_int("SESSION_HOURS", env, 12),
        login_max_failures=_int("LOGIN_MAX_FAILURES", env, 5),
        login_window_minutes=_int("LOGIN_WINDOW_MINUTES", env, 15),
        webhook_rate_per_min=_int("WEBHOOK_RATE_PER_MIN", env, 120),
        webhook_max_bytes=_int("WEBHOOK_MAX_BYTES", env, 16 * 1024),
        alert_max_age_seconds=_int("ALERT_MAX_AGE_SECONDS", env, 60),
        alert_dedup_window_seconds=_int("ALERT_DEDUP_WINDOW_SECONDS", env, 300),
        webhook_ip_allowlist=_allowlist(env.get("WEBHOOK_IP_ALLOWLIST"), is_prod),
        trusted_proxies=_csv(env.get("TRUSTED_PROXIES")),
        worker_nice=_worker_nice(env),
        worker_threads=_worker_threads(env),
        smartapi_client_id=env.get("SMARTAPI_CLIENT_ID", "").strip() or None,
        smartapi_api_key=env.get("SMARTAPI_API_KEY", "").strip() or None,
        smartapi_password=env.get("SMARTAPI_PASSWORD", "").strip() or None,
        smartapi_totp=env.get("SMARTAPI_TOTP", "").strip() or None,
    )


_cached: Settings | None = None


def settings() -> Settings:
    """Process-wide settings, loaded once."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached


def reset_settings_cache() -> None:
    global _cached
    _cached = None


def new_token(nbytes: int = 24) -> str:
    """URL-safe random token (24 bytes = 192 bits)."""
    return secrets.token_urlsafe(nbytes)
