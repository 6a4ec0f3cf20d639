"""Targets and switches: validated by Apprise, scoped per user, secrets encrypted at rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from ats_app.engine.core.errors import NotFound, ValidationError
from ats_app.engine.notify import targets as nt
from ats_app.engine.notify.messages import Event
from ats_app.engine.store.db import get_engine
from ats_app.engine.tenants import users

from .conftest import HTTP_PASSWORD, SMTP_PASSWORD, HttpSink, SmtpSink

# aiosmtpd warns on every session that AUTH without TLS is unsafe: deliberate here, locally.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

ROOT = Path(__file__).resolve().parents[2]
TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TG_URL = f"tgram://{TG_TOKEN}/987654321"


def _user(session: Session, name: str) -> int:
    uid = users.create_user(session, name, "password123", name.title(), "X").id
    session.flush()
    return uid


def _dump_all_text(url: str) -> str:
    """Every value of every row of every table, as the database stores it."""
    engine = get_engine(url)
    out = []
    with engine.connect() as c:
        for table in sa.inspect(engine).get_table_names():
            for row in c.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.extend(str(v) for v in row)
    return "\n".join(out)


def test_secrets_encrypted_at_rest_and_never_returned(session: Session, database_url: str,
                                                      smtp_sink: SmtpSink) -> None:
    uid = _user(session, "alice")
    views = [nt.add_target(session, uid, TG_URL, "phone"),
             nt.add_target(session, uid, smtp_sink.url(), None)]
    session.commit()
    assert views[0].url_hint == "tgram://12…/…21" and views[0].label == "phone"
    assert views[1].label == "E-Mail" and views[1].url_hint.startswith("mailto://")
    stored = _dump_all_text(database_url)  # targets and the audit log alike
    for secret in (TG_TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", SMTP_PASSWORD, "987654321"):
        assert secret not in stored
        assert all(secret not in repr(v) for v in nt.list_targets(session, uid))
    assert stored.count("enc1:") >= 2
    # Only the sender sees them, decrypted.
    assert [u for _, _, u in nt.target_urls(session, uid)] == [TG_URL, smtp_sink.url()]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_urls_refused_without_echoing_them(session: Session) -> None:
    uid = _user(session, "bob")
    for bad in ("", "not a url", "nosuchservice://abc/def", "tgram://short"):
        with pytest.raises(ValidationError) as err:
            nt.add_target(session, uid, bad)
        assert err.value.field == "url"
        assert "short" not in str(err.value) and "abc/def" not in str(err.value)
    for _ in range(nt.MAX_TARGETS_PER_USER):
        nt.add_target(session, uid, TG_URL)
    with pytest.raises(ValidationError, match="at most"):
        nt.add_target(session, uid, TG_URL)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_targets_and_switches_are_per_user(session: Session) -> None:
    alice, bob = _user(session, "alice"), _user(session, "bob")
    t = nt.add_target(session, alice, TG_URL)
    assert nt.list_targets(session, bob) == []
    with pytest.raises(NotFound):
        nt.remove_target(session, bob, t.id)
    with pytest.raises(NotFound):
        nt.set_target_enabled(session, bob, t.id, False)
    switches = nt.set_event_switches(session, alice, disable=["order_filled", "FEED_STALE"])
    assert switches["order_filled"] is False and switches["feed_stale"] is False
    assert switches["position_closed"] is True
    assert all(nt.event_switches(session, bob).values())
    assert nt.deliverable_events(session, bob) == set()  # switched on, but nowhere to send
    assert "order_filled" not in nt.deliverable_events(session, alice)
    with pytest.raises(ValidationError, match="unknown event"):
        nt.set_event_switches(session, alice, enable=["order_exploded"])
    with pytest.raises(ValidationError, match="both"):
        nt.set_event_switches(session, alice, enable=["kill_switch"], disable=["kill_switch"])
    nt.set_target_enabled(session, alice, t.id, False)
    assert nt.deliverable_events(session, alice) == set()
    nt.remove_target(session, alice, t.id)
    assert nt.list_targets(session, alice) == []


def _cli(*args: str, stdin: str | None = None, expect: int = 0) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "ats_app.cli", *args, "--json"],
        input=stdin, capture_output=True, text=True, env=dict(os.environ), cwd=ROOT, timeout=60,
    )
    assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    if expect:
        return {"stderr": proc.stderr}
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, lines
    return json.loads(lines[0])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_add_list_test_events_remove(session: Session, http_sink: HttpSink) -> None:
    _user(session, "carol")
    session.commit()
    url = http_sink.url("/carol")
    added = _cli("notify", "add", "--user", "carol", "--url", "-", "--label", "hook",
                 stdin=url + "\n")
    assert added["label"] == "hook" and HTTP_PASSWORD not in json.dumps(added)
    listed = _cli("notify", "list", "--user", "carol")
    assert [t["id"] for t in listed["targets"]] == [added["id"]]
    assert HTTP_PASSWORD not in json.dumps(listed) and "hookuser" not in json.dumps(listed)

    tested = _cli("notify", "test", "--user", "carol")
    assert tested["sent"] == 1 and tested["targets"][0]["ok"] is True
    assert [p.data["title"] for p in http_sink.on("/carol")] == ["ATS test notification"]
    assert http_sink.on("/carol")[0].auth == f"hookuser:{HTTP_PASSWORD}"

    http_sink.mode = "down"
    failed = _cli("notify", "test", "--user", "carol", expect=1)
    assert "not accepted" in failed["stderr"] and HTTP_PASSWORD not in failed["stderr"]

    events = _cli("notify", "events", "--user", "carol", "--disable", "feed_stale",
                  "--disable", "bot_started", "--enable", "kill_switch")
    assert events["events"]["feed_stale"] is False and events["events"]["bot_started"] is False
    assert set(events["events"]) == {e.value for e in Event}
    bad = _cli("notify", "events", "--user", "carol", "--enable", "nope", expect=1)
    assert "unknown event" in bad["stderr"]
    bad_url = _cli("notify", "add", "--user", "carol", "--url", "nosuchservice://x/y", expect=1)
    assert "does not accept" in bad_url["stderr"]

    assert _cli("notify", "remove", "--user", "carol", "--id", str(added["id"]))["removed"]
    assert "not found" in _cli("notify", "remove", "--user", "carol", "--id",
                               str(added["id"]), expect=1)["stderr"]
    assert _cli("notify", "list", "--user", "carol")["targets"] == []


def test_a_hanging_service_is_given_up_quickly() -> None:
    """A server that accepts and never answers costs the sender the capped timeout only."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepted by the kernel, never read or answered
    port = listener.getsockname()[1]
    try:
        for url in (f"json://127.0.0.1:{port}/hook",
                    f"mailto://u:p@127.0.0.1:{port}?from=a@ats.test&to=b@example.com"):
            t0 = time.perf_counter()
            assert nt.send_now(url, "t", "b", timeout=0.5) is False
            assert time.perf_counter() - t0 < 2.5, url
    finally:
        listener.close()
