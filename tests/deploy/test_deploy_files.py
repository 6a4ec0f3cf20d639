"""Deployment files, checked with what runs without a Docker engine.

- docker-compose.yml parses; every service has a health check and a restart policy; the app
  services wait for the one-shot migration; only the proxy publishes ports.
- Dockerfile: multi-stage, the JavaScript toolchain only in the build stage, the reflex flags
  it uses exist in the installed reflex, the runtime command is the backend.
- nginx site file passes `nginx -t` (Debian's nginx) with self-signed test certificates, and
  a running nginx with it serves the dashboard, proxies the backend and refuses /webhook/
  from addresses that are not TradingView's.
- Caddyfile passes `caddy validate` and its /webhook/ matcher holds TradingView's addresses.
- systemd units pass `systemd-analyze verify`; their ExecStart lines are real CLI commands.
- The container commands start the real processes against PostgreSQL and Redis, the health
  check script reports them healthy, and without secrets production refuses to start.
"""

from __future__ import annotations

import configparser
import http.client
import http.server
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from ats_app.cli import build_parser
from tests.conftest import require_or_skip

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
NGINX_SITE = ROOT / "deploy" / "nginx" / "ats.conf"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
UNITS = ROOT / "deploy" / "systemd"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"

# TradingView's published webhook source addresses.
TRADINGVIEW_IPS = {"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"}
SERVICES = {"backend", "worker", "monitor", "feed", "order-updates", "migrate", "redis",
            "postgres", "proxy"}
APP_SERVICES = {"backend", "worker", "monitor", "feed", "order-updates"}
CLI = ["python", "-m", "ats_app.cli"]


# ---------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    try:
        import yaml
    except ImportError:
        yaml = None
    require_or_skip(yaml is not None, "PyYAML (to parse docker-compose.yml)")
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_names_every_service(compose: dict) -> None:
    assert set(compose["services"]) == SERVICES


def test_compose_every_service_has_healthcheck_and_restart_policy(compose: dict) -> None:
    for name, svc in compose["services"].items():
        hc = svc.get("healthcheck")
        assert hc and not hc.get("disable") and hc.get("test"), f"{name}: no healthcheck"
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure", "no"), name
        if name != "migrate":
            assert svc["restart"] in ("always", "unless-stopped"), f"{name} must restart"
    # One-shot: restarting it would loop; everything else waits for its successful exit.
    assert compose["services"]["migrate"]["restart"] == "no"


def test_compose_app_services_wait_for_migrate(compose: dict) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == [*CLI, "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
    assert services["proxy"]["depends_on"]["backend"]["condition"] == "service_healthy"


def test_compose_commands_are_real_cli_commands(compose: dict) -> None:
    parser = build_parser()
    expected = {"migrate": "cmd_db_upgrade", "worker": "cmd_worker", "monitor": "cmd_monitor",
                "order-updates": "cmd_order_updates", "feed": "cmd_feed"}
    for name, fn_name in expected.items():
        cmd = compose["services"][name]["command"]
        assert cmd[:3] == CLI, name
        assert parser.parse_args(cmd[3:]).fn.__name__ == fn_name, name
    backend = compose["services"]["backend"]["command"]
    assert backend[:5] == ["reflex", "run", "--env", "prod", "--backend-only"]


def test_the_deploy_tests_overlays_cover_every_built_service(compose: dict) -> None:
    """`make deploy-test`'s overlays build each image on the host's network (the only way to
    the package registries here), with the test's settings, from the stand-in bases: a
    service they miss looks the official base up on Docker Hub (the feed's did: run failed)."""
    import yaml

    overlay = yaml.safe_load((ROOT / "deploy" / "test" / "compose.test.yml").read_text())
    built = {name for name, svc in compose["services"].items() if "build" in svc}
    covered = {name for name, svc in overlay["services"].items()
               if (svc.get("build") or {}).get("network") == "host"}
    assert built <= covered, built - covered
    for name in APP_SERVICES | {"migrate"}:
        assert overlay["services"][name].get("environment"), name
    # ... and, when Docker Hub cannot be reached, on the stand-in base images.
    standins = yaml.safe_load((ROOT / "deploy" / "test" / "compose.standins.yml").read_text())
    on_standins = {name for name, svc in standins["services"].items()
                   if "PYTHON_IMAGE" in ((svc.get("build") or {}).get("args") or {})}
    assert built <= on_standins, built - on_standins


def test_compose_prod_config_is_fail_closed(compose: dict) -> None:
    for name in APP_SERVICES | {"migrate"}:
        env = compose["services"][name]["environment"]
        assert env["ATS_ENV"] == "prod", name
        # ${VAR:?message}: compose refuses to start without the secret; no default secrets.
        assert re.fullmatch(r"\$\{ATS_SECRET_KEY:\?[^}]*\}", env["ATS_SECRET_KEY"]), name
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"], name
        assert env["REDIS_URL"].startswith("redis://redis:"), name
        assert env["PUBLIC_BASE_URL"].startswith("https://"), name
        assert compose["services"][name]["build"]["target"] == "runtime", name
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?")


def test_compose_only_proxy_publishes_ports_and_worker_scales(compose: dict) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if name != "proxy":
            assert "ports" not in svc, f"{name} must not be reachable from outside"
    published = {str(p).split(":")[0] for p in services["proxy"]["ports"]}
    assert published == {"80", "443"}
    assert services["proxy"]["build"]["target"] == "proxy"
    worker = services["worker"]
    assert "container_name" not in worker  # `--scale worker=3` needs generated names
    assert "container_name" not in services["backend"]


def test_compose_redis_persists_and_postgres_uses_a_volume(compose: dict) -> None:
    services = compose["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") and not v.startswith(("/", ".")) for v in
               services["redis"]["volumes"])
    pg_volumes = services["postgres"]["volumes"]
    named = [v.split(":")[0] for v in pg_volumes if v.endswith(":/var/lib/postgresql/data")]
    assert named and named[0] in compose["volumes"]


# ------------------------------------------------------------------------------- Dockerfile


def _stages() -> list[tuple[str, str, list[str]]]:
    """(name, base, instruction lines) per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?$", line, re.IGNORECASE)
        if m:
            stages.append((m.group(2) or f"stage{len(stages)}", m.group(1), []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def _reflex_help(*cmd: str) -> str:
    out = subprocess.run([str(VENV_BIN / "reflex"), *cmd, "--help"], capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout


def test_dockerfile_is_multistage_and_final_stage_has_no_javascript() -> None:
    stages = _stages()
    names = [s[0] for s in stages]
    assert len(stages) >= 3 and {"frontend", "proxy", "runtime"} <= set(names)
    assert names[-1] == "runtime", "the default (last) stage must be the Python runtime"
    final = "\n".join(stages[-1][2])
    for tool in ("bun", "npm", "node", "/opt/bun"):
        assert not re.search(rf"(?<![\w.-]){re.escape(tool)}(?![\w-])", final), tool
    assert "stage" not in stages[-1][1] and "frontend" not in stages[-1][1]
    # bun is installed from npm at the pinned version, in the frontend stage only.
    bun_stages = [n for n, _, lines in stages if any("bun@" in ln for ln in lines)]
    assert bun_stages == ["frontend"]
    assert any("npm install -g --prefix" in ln and "bun@${BUN_VERSION}" in ln
               for ln in dict((n, ls) for n, _, ls in stages)["frontend"])
    assert re.search(r"ARG BUN_VERSION=1\.4\.4", DOCKERFILE.read_text())
    # Every COPY --from names an earlier stage.
    for i, (_, _, lines) in enumerate(stages):
        for ln in lines:
            m = re.match(r"COPY\s+.*--from=(\S+)", ln)
            if m:
                assert m.group(1) in names[:i], ln
    # The proxy serves the exported static site.
    proxy = "\n".join(dict((n, ls) for n, _, ls in stages)["proxy"])
    assert "--from=frontend /app/.web/build/client /srv/dashboard" in proxy
    assert "deploy/Caddyfile" in proxy


def test_dockerfile_reflex_commands_use_flags_reflex_has() -> None:
    runs = [ln for _, _, lines in _stages() for ln in lines if ln.startswith("RUN ")]
    export = next((re.search(r"reflex export ([^&]*)", ln) for ln in runs
                   if "reflex export" in ln), None)
    assert export, "the frontend must be built with reflex export"
    export_flags = re.findall(r"--[\w-]+", export.group(1))
    assert "--frontend-only" in export_flags and "--no-zip" in export_flags
    export_help = _reflex_help("export")
    for flag in export_flags:
        assert flag in export_help, f"reflex export has no {flag}"
    cmd = _final_cmd()
    assert cmd[:5] == ["reflex", "run", "--env", "prod", "--backend-only"]
    run_help = _reflex_help("run")
    for flag in (a for a in cmd if a.startswith("--")):
        assert flag in run_help, f"reflex run has no {flag}"


def _final_cmd() -> list[str]:
    lines = _stages()[-1][2]
    cmds = [ln for ln in lines if ln.startswith("CMD ")]
    assert len(cmds) == 1
    import json

    return json.loads(cmds[0][4:])


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    lines = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".git", ".venv", ".web", ".data", ".env", "secret.key", "node_modules"):
        assert entry in lines, entry


# ------------------------------------------------------------------------------------ nginx


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "fullchain.pem", tmp / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=ats.example.com", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def _nginx_conf(tmp: Path, *, http_port: int = 80, https_port: int = 443,
                backend_port: int = 8000, static_root: str = "/var/www/ats",
                allow_local_webhook: bool = False, ipv4_only: bool = False) -> Path:
    """The site file inside a minimal nginx.conf, with test certificates and paths under tmp."""
    cert, key = _self_signed(tmp)
    site = NGINX_SITE.read_text()
    site = site.replace("/etc/letsencrypt/live/ats.example.com/fullchain.pem", str(cert))
    site = site.replace("/etc/letsencrypt/live/ats.example.com/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/", f"{tmp}/")
    site = site.replace("/var/www/ats", static_root)
    site = re.sub(r"listen (\[::\]:)?443 ", f"listen \\g<1>{https_port} ", site)
    site = re.sub(r"listen (\[::\]:)?80;", f"listen \\g<1>{http_port};", site)
    site = site.replace("server 127.0.0.1:8000", f"server 127.0.0.1:{backend_port}")
    if ipv4_only:  # a running test server must not depend on the host having IPv6
        site = re.sub(r"\n\s*listen \[::\]:[^\n]*", "", site)
    if allow_local_webhook:
        site = site.replace("    52.32.178.7     1;", "    52.32.178.7     1;\n    127.0.0.2 1;")
    (tmp / "site.conf").write_text(site)
    conf = tmp / "nginx.conf"
    # As root, nginx's workers would drop to www-data, which cannot read pytest's 0700 tmp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(f"""
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
""")
    return conf


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


def test_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    nginx = _nginx()
    require_or_skip(nginx is not None, "nginx (Debian package nginx)")
    conf = _nginx_conf(tmp_path)
    out = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def test_nginx_site_has_allowlist_websocket_and_tls() -> None:
    site = NGINX_SITE.read_text()
    geo = re.search(r"geo \$ats_webhook_allowed \{(.*?)\}", site, re.S)
    assert geo
    allowed = set(re.findall(r"^\s*([\d.]+)\s+1;", geo.group(1), re.M))
    assert allowed == TRADINGVIEW_IPS
    assert re.search(r"default\s+0;", geo.group(1))
    webhook = re.search(r"location /webhook/ \{(.*?)\n    \}", site, re.S).group(1)
    assert "$ats_webhook_allowed = 0" in webhook and "return 403" in webhook
    assert "proxy_set_header Upgrade $http_upgrade;" in site
    assert re.search(r"location /_event \{", site)
    assert "/etc/letsencrypt/live/" in site and "listen 443 ssl" in site
    assert "/.well-known/acme-challenge/" in site


class _Backend(http.server.BaseHTTPRequestHandler):
    """Stands in for the Reflex backend: answers every request with its path."""

    def _answer(self) -> None:
        body = f"backend {self.command} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, *, data: bytes | None = None, source: str = "127.0.0.1") -> tuple[int, str]:
    """One request from a chosen loopback source address (127.0.0.2 plays TradingView)."""
    scheme, rest = url.split("://")
    hostport, _, path = rest.partition("/")
    host, port = hostport.split(":")
    if scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, int(port), context=ctx, timeout=5, source_address=(source, 0))
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=5,
                                          source_address=(source, 0))
    try:
        conn.request("POST" if data is not None else "GET", "/" + path, body=data)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_running_nginx_serves_dashboard_proxies_backend_and_guards_webhook(
    tmp_path: Path,
) -> None:
    nginx = _nginx()
    require_or_skip(nginx is not None, "nginx (Debian package nginx)")
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    static = tmp_path / "www"
    (static / "login").mkdir(parents=True)
    (static / "index.html").write_text("dashboard index")
    (static / "login.html").write_text("login page")
    (static / "404.html").write_text("spa fallback")
    http_port, https_port = _free_port(), _free_port()
    conf = _nginx_conf(tmp_path, http_port=http_port, https_port=https_port,
                       backend_port=backend.server_address[1], static_root=str(static),
                       allow_local_webhook=True, ipv4_only=True)
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                            stderr=subprocess.PIPE)
    try:
        base = f"https://127.0.0.1:{https_port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                _get(f"{base}/")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        assert _get(f"{base}/") == (200, "dashboard index")
        assert _get(f"{base}/login") == (200, "login page")
        assert _get(f"{base}/anything/else") == (200, "spa fallback")
        assert _get(f"{base}/ping") == (200, "backend GET /ping")
        assert _get(f"{base}/healthz") == (200, "backend GET /healthz")
        # Not a TradingView address: refused before reaching the backend.
        assert _get(f"{base}/webhook/abc", data=b"{}")[0] == 403
        # An allowlisted address (127.0.0.2 stands in for TradingView here) gets through.
        assert _get(f"{base}/webhook/abc", data=b"{}", source="127.0.0.2") == (
            200, "backend POST /webhook/abc")
        # Plain HTTP only redirects, the webhook too.
        status, _ = _get(f"http://127.0.0.1:{http_port}/webhook/abc", data=b"{}",
                         source="127.0.0.2")
        assert status == 301
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(10)
        backend.shutdown()


# ------------------------------------------------------------------------------------ Caddy


def test_caddyfile_validates_and_restricts_webhook(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    require_or_skip(caddy is not None, "caddy (Debian package caddy)")
    env = {**os.environ, "ATS_DOMAIN": "ats.example.com", "ACME_EMAIL": "ops@example.com",
           "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("WEBHOOK_ALLOW_IPS", None)
    out = subprocess.run([caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    adapted = subprocess.run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter",
                              "caddyfile"], capture_output=True, text=True, timeout=30, env=env)
    assert adapted.returncode == 0, adapted.stderr[-2000:]
    text = adapted.stdout
    ranges = re.search(r'"remote_ip":\{"ranges":\[([^\]]*)\]', text)
    assert ranges, "no remote_ip matcher in the adapted config"
    assert set(re.findall(r'"([^"]+)"', ranges.group(1))) == TRADINGVIEW_IPS
    assert '"/webhook/*"' in text and '"/_event"' in text
    assert '"root":"/srv/dashboard"' in text.replace(" ", "")


# ---------------------------------------------------------------------------------- systemd


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp


def test_systemd_units_run_real_cli_commands() -> None:
    parser = build_parser()
    expected = {
        "ats-migrate.service": "cmd_db_upgrade",
        "ats-worker@.service": "cmd_worker",
        "ats-monitor.service": "cmd_monitor",
        "ats-order-updates.service": "cmd_order_updates",
        "ats-feed.service": "cmd_feed",
    }
    for name, fn_name in expected.items():
        unit = _unit(name)
        argv = shlex.split(unit["Service"]["ExecStart"])
        assert argv[:3] == ["/opt/ats/.venv/bin/python", "-m", "ats_app.cli"], name
        assert parser.parse_args(argv[3:]).fn.__name__ == fn_name, name
        assert unit["Service"]["EnvironmentFile"] == "/etc/ats/ats.env", name
        if name != "ats-migrate.service":
            assert unit["Service"]["Restart"] == "always", name
            assert "ats-migrate.service" in unit["Unit"]["Requires"], name
            assert "ats-migrate.service" in unit["Unit"]["After"], name
    assert _unit("ats-migrate.service")["Service"]["Type"] == "oneshot"
    # Every long-running service is started with the target (the feed was missing from both
    # deploy paths: the monitor then priced positions by REST only once ticks went stale).
    wanted = set((UNITS / "ats.target").read_text().split("Wants=", 1)[1].split("[Install]")[0]
                 .replace("Wants=", " ").split())
    units = {u.name for u in UNITS.glob("*.service") if "@" not in u.name}
    optional = {"ats-telegram.service"}  # only with a bot token: enabled on its own
    assert units - optional <= wanted, units - optional - wanted
    backend = _unit("ats-backend.service")
    argv = shlex.split(backend["Service"]["ExecStart"])
    assert argv[0] == "/opt/ats/.venv/bin/reflex"
    assert argv[1:6] == ["run", "--env", "prod", "--backend-only", "--backend-host"]
    assert argv[argv.index("--backend-host") + 1] == "127.0.0.1"  # only nginx reaches it
    assert backend["Service"]["Restart"] == "always"
    assert "ats-migrate.service" in backend["Unit"]["Requires"]


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    require_or_skip(analyze is not None, "systemd-analyze")
    # Point the units at this checkout and its venv so the executables exist here.
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/opt/ats/.venv/bin", str(VENV_BIN))
        text = text.replace("/opt/ats", str(ROOT))
        (tmp_path / unit.name).write_text(text)
    (tmp_path / "ats-worker@1.service").symlink_to(tmp_path / "ats-worker@.service")
    names = [str(tmp_path / n) for n in ("ats.target", "ats-migrate.service",
                                         "ats-backend.service", "ats-monitor.service",
                                         "ats-order-updates.service", "ats-feed.service",
                                         "ats-worker@1.service")]
    out = subprocess.run([analyze, "verify", *names], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    ours = [ln for ln in (out.stdout + out.stderr).splitlines() if "ats" in ln]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr


# ---------------------------------------------------- container commands, run for real here


def test_cli_help_lists_the_production_services() -> None:
    out = subprocess.run([sys.executable, "-m", "ats_app.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for cmd in ("worker", "monitor", "feed", "order-updates", "db"):
        assert re.search(rf"\b{cmd}\b", out.stdout), cmd


@pytest.fixture
def prod_env(pg_server: str, private_redis_url: str) -> Iterator[dict[str, str]]:
    """ATS_ENV=prod with every secret, a fresh PostgreSQL database and a flushed Redis db."""
    import redis

    name = f"ats_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(private_redis_url).flushdb()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ATS_", "SMARTAPI_", "DATABASE_URL", "REDIS_URL", "TRADING_"))}
    env = {
        **base,
        "PATH": f"{VENV_BIN}:{base.get('PATH', '')}",
        "ATS_ENV": "prod",
        "ATS_SECRET_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": f"{pg_server.rsplit('/', 1)[0]}/{name}",
        "REDIS_URL": private_redis_url,
        "PUBLIC_BASE_URL": "https://ats.example.test",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "REFLEX_CHECK_LATEST_VERSION": "false",
        "REFLEX_HOT_RELOAD_EXCLUDE_PATHS": str(ROOT),
    }
    yield env
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _local(argv: list[str]) -> list[str]:
    """A container command as run from this checkout: python/reflex from the venv."""
    first = {"python": sys.executable, "reflex": str(VENV_BIN / "reflex")}.get(argv[0], argv[0])
    return [first, *argv[1:]]


def _healthcheck(compose: dict, service: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD"
    return subprocess.run(_local(test[1:]), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_container_commands_start_the_real_services(
    compose: dict, prod_env: dict[str, str], tmp_path: Path
) -> None:
    services = compose["services"]
    # Before anything runs, every health check reports unhealthy (so it can fail).
    port = _free_port()
    env = {**prod_env, "BACKEND_PORT": str(port)}
    for name in ("backend", "worker", "monitor", "feed", "order-updates"):
        assert _healthcheck(compose, name, env).returncode == 1, name

    migrate = subprocess.run(_local(services["migrate"]["command"]), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    assert _healthcheck(compose, "migrate", env).returncode == 0

    backend_cmd = _local(_final_cmd())
    # Compose fills ${BACKEND_PORT:-8000} from the operator's .env; the image's own CMD is
    # that default.
    composed = [a.replace("${BACKEND_PORT:-8000}", "8000")
                for a in services["backend"]["command"]]
    assert backend_cmd[1:] == composed[1:]
    backend_cmd[backend_cmd.index("--backend-port") + 1] = str(port)
    backend_cmd[backend_cmd.index("--backend-host") + 1] = "127.0.0.1"
    procs = []
    logs = {}
    try:
        for name, argv in (("worker", services["worker"]["command"]),
                           ("monitor", services["monitor"]["command"]),
                           ("order-updates", services["order-updates"]["command"]),
                           ("feed", services["feed"]["command"]),
                           ("backend", backend_cmd)):
            logs[name] = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115
            procs.append(subprocess.Popen(_local(argv), cwd=ROOT, env=env, stdout=logs[name],
                                          stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        pending = {"backend", "worker", "monitor", "feed", "order-updates"}
        while pending and time.monotonic() < deadline:
            for p in procs:
                assert p.poll() is None, _tails(tmp_path)
            pending = {n for n in pending if _healthcheck(compose, n, env).returncode != 0}
            time.sleep(0.5)
        assert not pending, f"unhealthy: {pending}\n{_tails(tmp_path)}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            body = resp.read().decode()
        assert '"worker":true' in body and '"monitor":true' in body, body
    finally:
        for p in reversed(procs):
            _stop(p, signal.SIGINT if p is procs[-1] else signal.SIGTERM)
        for fh in logs.values():
            fh.close()


def _tails(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in tmp_path.glob("*.log"))


def test_production_commands_refuse_to_start_without_secrets(
    compose: dict, prod_env: dict[str, str]
) -> None:
    for missing in ("ATS_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL"):
        env = {k: v for k, v in prod_env.items() if k != missing}
        # The migration runs first in every deploy; the worker once, for the key.
        for service in ("migrate", "worker") if missing == "ATS_SECRET_KEY" else ("migrate",):
            out = subprocess.run(_local(compose["services"][service]["command"]), cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=60)
            assert out.returncode == 1, (service, missing, out.stderr)
            assert missing in out.stderr, (service, missing, out.stderr)
