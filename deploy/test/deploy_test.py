"""The deploy scenario of `make deploy-test` (started by deploy/test/deploy_test.sh, which brings
the engine, Compose and the base images, and sets DOCKER_HOST and the ATS_DEPLOY_* variables).

Against the real docker-compose.yml, with ATS_DOMAIN=localhost (Caddy's internal CA), from a
copy of the committed tree (HEAD; ATS_DEPLOY_SOURCE=worktree: the checkout as it is) so the
upgrade's extra migration touches only that copy:
build; no build tools in the runtime image; `up -d` to healthy; migrations once; Chromium
loads the dashboard over HTTPS and a user logs in; a paper alert through Caddy gets 202 and
becomes a filled order and an open position; `--scale worker=3`; the worker killed mid-job and
Redis restarted lose nothing; `down` + `up -d` keeps every row; an upgrade applies a new
migration once; the EC2 guide's backup and restore work. Timings go to
$ATS_DEPLOY_RUN/timings.json and are printed at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUN = Path(os.environ["ATS_DEPLOY_RUN"])
SRC = RUN / "src"
FILES = os.environ["ATS_DEPLOY_COMPOSE_FILES"].split()
ARTIFACTS = ROOT / ".test-artifacts" / "deploy-test"
BASE = "https://localhost"
USER, PASSWORD = f"trader{secrets.token_hex(3)}", "deploy-test-pass-1"
TIMINGS: dict[str, float] = {}
SERVICES = ("postgres", "redis", "backend", "worker", "monitor", "feed", "order-updates",
            "proxy")


class Failed(Exception):
    pass


def log(msg: str) -> None:
    print(f"deploy-test [{time.strftime('%H:%M:%S', time.gmtime())}] {msg}", flush=True)


def sh(*args: str, stdin: str | None = None, timeout: float = 1800, check: bool = True,
       cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or SRC)
    if check and proc.returncode != 0:
        raise Failed(f"{' '.join(args[:6])} ... exited {proc.returncode}:\n"
                     f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def compose_cmd(*args: str) -> list[str]:
    files = [a for f in FILES if f != "-f" for a in ("-f", f)]
    return ["docker", "compose", "--env-file", str(RUN / "test.env"), *files, *args]


def dc(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return sh(*compose_cmd(*args), **kw)


def timed(name: str, fn: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    out = fn()
    TIMINGS[name] = round(time.monotonic() - t0, 1)
    log(f"{name}: {TIMINGS[name]} s")
    return out


def until(what: str, probe: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except Failed as exc:
            last = exc
        time.sleep(every)
    raise Failed(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def sql(query: str) -> list[list[str]]:
    out = dc("exec", "-T", "postgres", "psql", "-U", "ats", "-d", "ats", "-At", "-F", "|",
             "-v", "ON_ERROR_STOP=1", "-c", query).stdout
    return [line.split("|") for line in out.splitlines() if line]


def cli(*args: str, stdin: str | None = None) -> dict[str, Any]:
    out = dc("exec", "-T", "backend", "python", "-m", "ats_app.cli", *args, "--json",
             stdin=stdin).stdout.strip().splitlines()
    return json.loads(out[-1])


# --- the stages ---------------------------------------------------------------------------

def stage_source() -> None:
    """A copy of the committed tree, plus the test env file (never a .env in the checkout)."""
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    if os.environ.get("ATS_DEPLOY_SOURCE") == "worktree":  # the checkout as it is, uncommitted
        names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"], cwd=ROOT, capture_output=True,
                               check=True).stdout.split(b"\0")
        for name in filter(None, names):
            src = ROOT / name.decode()
            if src.is_file():
                (SRC / name.decode()).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, SRC / name.decode())
    else:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(SRC)], input=archive, check=True)
    from cryptography.fernet import Fernet
    env = {
        "ATS_SECRET_KEY": Fernet.generate_key().decode(),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "ATS_DOMAIN": "localhost",
        "ACME_EMAIL": "ops@example.com",
        # Requests from this host reach Caddy from the stack network's gateway (Docker's
        # userland proxy): both allowlists, Caddy's and the backend's, are set to it alone.
        "WEBHOOK_ALLOW_IPS": "172.30.57.1/32",
        "WEBHOOK_IP_ALLOWLIST": "172.30.57.1",
    }
    (RUN / "test.env").write_text("".join(f'{k}="{v}"\n' for k, v in env.items()))
    (RUN / "test.env").chmod(0o600)


def build() -> None:
    dc("build", timeout=3600)


def check_images() -> None:
    sizes = {}
    for image in ("ats:latest", "ats-proxy:latest"):
        size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", image).stdout)
        sizes[image] = size
        TIMINGS[f"size_mb {image}"] = round(size / 1e6)
    log(f"image sizes: { {k: f'{v / 1e6:.0f} MB' for k, v in sizes.items()} }")
    # One container (each costs a full copy of the image under vfs): tools found, then sizes.
    out = sh("docker", "run", "--rm", "--entrypoint", "sh", "ats:latest", "-c",
             "for t in node npm npx bun gcc cc make g++ git; do command -v $t; done;"
             " ls -d /opt/bun /usr/local/lib/node_modules 2>/dev/null;"
             " find / -xdev -type f \\( -name node -o -name bun -o -name 'gcc*' \\)"
             " -perm -u+x 2>/dev/null; echo ---; du -sm /opt/venv /app /usr 2>/dev/null; true"
             ).stdout
    found, du = out.split("---\n", 1)
    if found.split():
        raise Failed(f"the runtime image carries build tools: {found.split()}")
    log("runtime image, MB by directory: " + " ".join(du.split()))


def services() -> dict[str, list[dict[str, Any]]]:
    out = dc("ps", "-a", "--format", "json").stdout.strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(x) for x in out.splitlines()]
    by: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["Service"], []).append(row)
    return by


def healthy(workers: int = 2) -> bool:
    by = services()
    for name in SERVICES:
        rows = by.get(name, [])
        if not rows or any(r.get("State") != "running" or r.get("Health") not in ("healthy", "")
                           for r in rows):
            return False
        if any(r.get("Health") != "healthy" for r in rows):
            return False
    if len(by.get("worker", [])) != workers:
        return False
    migrate = by.get("migrate", [])
    if not migrate or migrate[0].get("State") != "exited" or migrate[0].get("ExitCode") != 0:
        if migrate and migrate[0].get("State") == "exited":
            raise Failed(f"migrate exited {migrate[0].get('ExitCode')}:\n"
                         + dc("logs", "migrate", check=False).stdout[-3000:])
        return False
    return True


def wait_healthy(workers: int = 2, timeout: float = 600) -> None:
    try:
        until("every service healthy", lambda: healthy(workers), timeout, every=3)
    except Failed:
        by = services()
        states = {k: [(r.get("State"), r.get("Health")) for r in v] for k, v in by.items()}
        logs = dc("logs", "--tail", "30", check=False).stdout[-6000:]
        raise Failed(f"stack not healthy: {states}\n{logs}") from None


def up() -> None:
    dc("up", "-d", timeout=900)
    wait_healthy()


def alembic_head() -> str:
    revs: dict[str, str | None] = {}
    for f in (SRC / "alembic" / "versions").glob("*.py"):
        text = f.read_text()
        rev = re.search(r"^revision[^=]*=\s*['\"]([^'\"]+)", text, re.M)
        down = re.search(r"^down_revision[^=]*=\s*['\"]([^'\"]+)", text, re.M)
        if rev:
            revs[rev.group(1)] = down.group(1) if down else None
    heads = set(revs) - set(revs.values())
    if len(heads) != 1:
        raise Failed(f"alembic/versions has {len(heads)} heads: {heads}")
    return heads.pop()


def migrations_once() -> None:
    """One migrate container, run once (no restart), exited 0; the schema at the head."""
    migrate = services()["migrate"]
    restarts = [sh("docker", "inspect", "-f", "{{.RestartCount}}", r["Name"]).stdout.strip()
                for r in migrate]
    if len(migrate) != 1 or restarts != ["0"]:
        raise Failed(f"migrate: {len(migrate)} containers, restarts {restarts}")
    head = alembic_head()
    if sql("SELECT version_num FROM alembic_version") != [[head]]:
        raise Failed(f"alembic_version is not {head}")
    log(f"migrations: applied to {head} by one migrate run")


def caddy_ca() -> ssl.SSLContext:
    pem = dc("exec", "-T", "proxy", "cat",
             "/data/caddy/pki/authorities/local/root.crt").stdout
    (RUN / "caddy-root.crt").write_text(pem)
    return ssl.create_default_context(cafile=str(RUN / "caddy-root.crt"))


def https(path: str, ctx: ssl.SSLContext, body: dict[str, Any] | None = None
          ) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def setup_trader() -> dict[str, Any]:
    """As the EC2 guide says: the first user from the CLI (registration is closed in prod)."""
    cli("user", "create", "--username", USER, "--password", "-", "--first", "Deploy",
        "--last", "Test", stdin=PASSWORD + "\n")
    totp = dc("exec", "-T", "backend", "python", "-c",
              "from ats_app.simulator.config import demo_account as d; a=d();"
              "print(a.client_code, a.pin, a.totp_secret)").stdout.split()
    acc = cli("account", "add", "--user", USER, "--label", "sim", "--client-id", totp[0],
              "--api-key", "-", "--pin", "-", "--totp-secret", "-",
              "--base-url", "http://sim:9100", stdin=f"simkey\n{totp[1]}\n{totp[2]}\n")
    strat = cli("strategy", "create", "--user", USER, "--name", "deploy-test")
    links = [cli("webhook", "create", "--user", USER, "--name", f"link{i}", "--account",
                 str(acc["id"]), "--strategy", str(strat["id"]), "--sl", "5", "--target", "10",
                 "--tsl", "off", "--paper") for i in (1, 2)]
    cli("bot", "start", "--user", USER)
    return {"links": links}


def alert(link: dict[str, Any], ctx: ssl.SSLContext, alert_id: str) -> int:
    body = {"secret": link["secret"], "action": "buy", "symbol": "NIFTY", "option": "CE",
            "strike": "ATM", "expiry": "nearest", "lots": 1, "id": alert_id}
    status, text = https(f"/webhook/{link['token']}", ctx, body)
    if status != 202:
        raise Failed(f"alert {alert_id}: {status} {text}")
    return int(json.loads(text)["alert_id"])


def filled(alert_row: int, timeout: float = 120, position_open: bool = True) -> None:
    """Exactly one FILLED order for the alert (an attempt that never reached the broker may
    be FAILED beside it, never a second fill), and its position (OPEN, when asked)."""
    def probe() -> bool:
        return sql(f"SELECT count(*) FROM orders WHERE alert_id = {alert_row}"
                   " AND status = 'FILLED'") == [["1"]]
    until(f"alert {alert_row}'s order FILLED", probe, timeout)
    time.sleep(2)  # a doubled fill would land now
    orders = sql(f"SELECT id, status, client_order_id, link_id FROM orders"
                 f" WHERE alert_id = {alert_row} ORDER BY id")
    fills = [o for o in orders if o[1] == "FILLED"]
    if len(fills) != 1:
        raise Failed(f"alert {alert_row} has {len(fills)} filled orders: {orders}")
    link_id = fills[0][3]
    state = " AND status = 'OPEN'" if position_open else ""
    until(f"one position on link {link_id}",
          lambda: sql(f"SELECT count(*) FROM positions WHERE link_id = {link_id}{state}")
          == [["1"]], 60)
    log(f"alert {alert_row}: orders {[(o[1], o[2]) for o in orders]}")


def browser_login(screens: Path) -> None:
    from playwright.sync_api import expect, sync_playwright
    screens.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = b.new_context(ignore_https_errors=True,
                                 viewport={"width": 1280, "height": 800}).new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{BASE}/")
            page.wait_for_url(re.compile(r"/login/?$"))
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            expect(page.locator("#welcome")).to_contain_text("Deploy Test")
            expect(page.locator("#mode-banner")).to_contain_text("PAPER TRADING")
            page.goto(f"{BASE}/positions")
            expect(page.get_by_text("NIFTY").first).to_be_visible()
            page.screenshot(path=str(screens / "positions.png"), full_page=True)
        finally:
            b.close()


STABLE = ("users", "broker_accounts", "webhook_links", "alerts", "orders", "positions")


def counts(tables: tuple[str, ...] = (*STABLE, "audit_events")) -> dict[str, str]:
    rows = sql(" UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in tables))
    return {t: n for t, n in rows}


def kill_worker_mid_job(link: dict[str, Any], ctx: ssl.SSLContext) -> int:
    """The orders table locked for a while (a psql session holding EXCLUSIVE): the alert's
    job is running (PROCESSING), blocked writing its order, when every worker is SIGKILLed;
    then Redis restarts. Recovery must finish the job: one filled order. (Holding the
    simulator's price calls held the job only when no fresh tick was in Redis: with the feed
    in the stack, it often was, and the step never saw the job running.)"""
    lock = subprocess.Popen(
        compose_cmd("exec", "-T", "postgres", "psql", "-U", "ats", "-d", "ats", "-c",
                    "BEGIN; LOCK TABLE orders IN EXCLUSIVE MODE; SELECT pg_sleep(60); COMMIT;"),
        cwd=SRC, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until("the orders table locked", lambda: sql(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = 'orders' AND l.mode = 'ExclusiveLock' AND l.granted")
            == [["1"]], 30, every=0.3)
        row = alert(link, ctx, "deploy-test-kill")
        until("the alert's job running", lambda: sql(
            f"SELECT status FROM alerts WHERE id = {row}") == [["PROCESSING"]], 40, every=0.3)
        time.sleep(1.0)
        status = sql(f"SELECT status FROM orders WHERE alert_id = {row}") or [["no order yet"]]
        if status[0][0] == "FILLED":
            raise Failed("the job finished before the workers were killed")
        workers = [r["Name"] for r in services()["worker"]]
        sh("docker", "kill", *workers)
    finally:
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE '%LOCK TABLE orders%' AND pid <> pg_backend_pid()")
        lock.wait(30)
    log(f"killed {len(workers)} workers with alert {row}'s order {status[0][0]};"
        " restarting Redis")
    dc("restart", "redis")
    dc("up", "-d", "--scale", "worker=3")
    wait_healthy(workers=3)
    # RQ finds the killed worker's job abandoned (30 s after its last beat), and recovery
    # re-runs it.
    timed("kill_recovery_s", lambda: filled(row, timeout=600, position_open=False))
    return row


def upgrade() -> None:
    """A new release with one more migration (only in the test's copy), rebuilt and `up -d`."""
    versions = SRC / "alembic" / "versions"
    head = alembic_head()
    (versions / "9999_deploy_test_upgrade.py").write_text(
        '"""deploy-test: a dummy migration that only the upgrade test\'s build has."""\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f'revision = "9999_deploy_test"\ndown_revision = "{head}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        '    op.create_table("deploy_test_upgrade",\n'
        '                    sa.Column("id", sa.Integer, primary_key=True))\n'
        "    op.execute(\"INSERT INTO deploy_test_upgrade (id) VALUES (1)\")\n\n\n"
        "def downgrade() -> None:\n"
        '    op.drop_table("deploy_test_upgrade")\n')
    timed("upgrade_build_s", lambda: dc("build", timeout=3600))
    timed("upgrade_up_to_healthy_s", lambda: (dc("up", "-d", "--scale", "worker=3"),
                                              wait_healthy(workers=3)))
    migrations_once()
    if sql("SELECT count(*) FROM deploy_test_upgrade") != [["1"]]:
        raise Failed("the upgrade's migration did not run once")
    if sql("SELECT version_num FROM alembic_version") != [["9999_deploy_test"]]:
        raise Failed("alembic_version is not the new head")


def backup_restore(before: dict[str, str]) -> None:
    """docs/deploy-ec2.md section 6, as written: pg_dump -Fc through compose exec, then
    pg_restore --clean --if-exists from that file."""
    dump = RUN / "ats.dump"
    with open(dump, "wb") as out:
        subprocess.run(["docker", "compose", "--env-file", str(RUN / "test.env"),
                        *[a for f in FILES if f != "-f" for a in ("-f", f)],
                        "exec", "-T", "postgres", "pg_dump", "-U", "ats", "-Fc", "ats"],
                       cwd=SRC, stdout=out, check=True, timeout=300)
    if dump.stat().st_size < 1000:
        raise Failed(f"the dump is {dump.stat().st_size} bytes")
    sql("DELETE FROM audit_events; DELETE FROM deploy_test_upgrade")  # lost after the dump
    with open(dump, "rb") as inp:
        proc = subprocess.run(["docker", "compose", "--env-file", str(RUN / "test.env"),
                               *[a for f in FILES if f != "-f" for a in ("-f", f)],
                               "exec", "-T", "postgres", "pg_restore", "-U", "ats", "--clean",
                               "--if-exists", "-d", "ats"], cwd=SRC, stdin=inp,
                              capture_output=True, timeout=300)
    if proc.returncode != 0:
        raise Failed(f"pg_restore exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    # The running services go on writing audit events: the trading rows must be the dump's.
    after = counts(STABLE)
    if after != before or sql("SELECT count(*) FROM deploy_test_upgrade") != [["1"]]:
        raise Failed(f"restore gave {after}, the dump had {before}")
    log(f"backup ({dump.stat().st_size} bytes) restored: {after}")


def main() -> int:
    t_all = time.monotonic()
    try:
        if not os.environ.get("ATS_DEPLOY_RESUME"):  # debugging: the stack is already up
            stage_source()
            timed("build_s", build)
            check_images()
            timed("up_to_healthy_s", up)
        migrations_once()
        ctx = caddy_ca()
        status, text = https("/healthz", ctx)
        if status != 200:
            raise Failed(f"/healthz through Caddy: {status} {text}")
        data = setup_trader()
        link1, link2 = data["links"]
        first = alert(link1, ctx, "deploy-test-1")
        timed("alert_to_open_position_s", lambda: filled(first))
        again = https(f"/webhook/{link1['token']}", ctx,
                      {"secret": link1["secret"], "action": "buy", "symbol": "NIFTY",
                       "option": "CE", "strike": "ATM", "expiry": "nearest", "lots": 1,
                       "id": "deploy-test-1"})
        if again[0] != 200 or json.loads(again[1]).get("status") != "duplicate":
            raise Failed(f"a repeated alert was not a duplicate: {again}")
        timed("browser_login_s", lambda: browser_login(ARTIFACTS))
        timed("scale_worker_3_s", lambda: (dc("up", "-d", "--scale", "worker=3"),
                                           wait_healthy(workers=3)))
        kill_worker_mid_job(link2, ctx)
        before = counts()
        ids_before = sql("SELECT id FROM orders ORDER BY id")
        log(f"rows: {before}")
        dc("down", timeout=600)
        timed("down_up_to_healthy_s", lambda: (dc("up", "-d", "--scale", "worker=3"),
                                               wait_healthy(workers=3)))
        after = counts()
        # Every row kept. The monitor may close a position meanwhile (a stop's sell order)
        # and the services write audit events: those may only be added.
        grow = ("orders", "audit_events")
        ids_after = sql("SELECT id FROM orders ORDER BY id")
        if ({t: after[t] for t in STABLE if t not in grow}
                != {t: before[t] for t in STABLE if t not in grow}
                or any(int(after[t]) < int(before[t]) for t in grow)
                or ids_after[:len(ids_before)] != ids_before):
            raise Failed(f"rows changed across down/up: {before} -> {after}")
        # Two entry alerts, two filled entries (an attempt the killed worker never sent is
        # FAILED beside its resend; a stop may have sold a position meanwhile).
        if sql("SELECT count(*) FROM orders WHERE purpose = 'ENTRY' AND status = 'FILLED'"
               ) != [["2"]]:
            raise Failed(f"expected exactly 2 filled entries: {sql('SELECT * FROM orders')}")
        upgrade()
        backup_restore(counts(STABLE))
    except Failed as exc:
        print(f"deploy-test: FAILED: {exc}", file=sys.stderr)
        print("--- docker compose ps -a / logs --tail 40", file=sys.stderr)
        print(dc("ps", "-a", check=False).stdout, file=sys.stderr)
        print(dc("logs", "--tail", "40", "--no-color", check=False).stdout[-12000:],
              file=sys.stderr)
        return 1
    finally:
        TIMINGS["scenario_s"] = round(time.monotonic() - t_all, 1)
        (RUN / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
        print(json.dumps(TIMINGS, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
