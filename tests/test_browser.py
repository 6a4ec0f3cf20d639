"""The dashboard in real headless Chromium: register, log out, log in, log out.

Runs the whole `reflex run` (frontend + backend + dev services) on free ports. The first run
builds the frontend, which takes a couple of minutes on two cores.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_or_skip
from tests.reflex_proc import ReflexProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = (
    Path(os.environ.get("ATS_SCREENSHOT_DIR", "")) if os.environ.get("ATS_SCREENSHOT_DIR") else None
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReflexProcess]:
    require_or_skip(Path(CHROMIUM).exists(), "Debian chromium at /usr/bin/chromium")
    proc = ReflexProcess(tmp_path_factory.mktemp("browser") / "data", backend_only=False)
    proc.start(timeout=600)
    yield proc
    proc.stop()


@pytest.fixture
def page(app: ReflexProcess):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine, not a fast laptop
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        context.close()
        browser.close()


def _shot(page, name: str) -> None:
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_register_login_logout(app: ReflexProcess, page) -> None:
    from playwright.sync_api import expect

    # A protected page sends a stranger to the login page.
    page.goto(f"{app.frontend}/")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    _shot(page, "login")

    page.click("#to-register")
    expect(page).to_have_url(re.compile(r"/register/?$"))
    page.fill("#first_name", "Asha")
    page.fill("#last_name", "Rao")
    page.fill("#username", "asha")
    page.fill("#password", "correct-horse-1")
    page.fill("#confirm", "correct-horse-2")
    page.click("#register-submit")
    expect(page.locator("#form-error")).to_contain_text("do not match")
    page.fill("#confirm", "correct-horse-1")
    page.click("#register-submit")

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#welcome")).to_contain_text("Asha Rao")
    expect(page.locator("#mode-banner")).to_contain_text("PAPER TRADING")
    _shot(page, "overview")

    page.reload()  # the session survives a reload
    expect(page.locator("#welcome")).to_contain_text("Asha Rao")

    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/?$"))
    page.goto(f"{app.frontend}/profile")
    expect(page).to_have_url(re.compile(r"/login/?$"))  # logged out means logged out

    page.fill("#username", "asha")
    page.fill("#password", "wrong-password")
    page.click("#login-submit")
    expect(page.locator("#form-error")).to_contain_text(
        re.compile("wrong username or password", re.I)
    )

    page.fill("#password", "correct-horse-1")
    page.click("#login-submit")
    expect(page.locator("#welcome")).to_contain_text("Asha Rao")

    page.click("#bot-start")
    expect(page.locator("#bot-state")).to_have_text("RUNNING")

    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login/?$"))
