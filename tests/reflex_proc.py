"""Start `reflex run` for tests on free ports with an isolated data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from ats_app.engine.services.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


class ReflexProcess:
    def __init__(self, data_dir: Path, *, backend_only: bool, env: dict[str, str] | None = None,
                 ports_by_env: bool = False):
        """`ports_by_env`: give the ports as an operator does (FRONTEND_PORT / BACKEND_PORT),
        not as --frontend-port / --backend-port flags."""
        self.data_dir = data_dir
        self.ports_by_env = ports_by_env
        self.backend_port = free_port()
        self.frontend_port = free_port()
        self.simulator_port = free_port()
        self.backend_only = backend_only
        log_dir = data_dir.parent
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / ("backend.log" if backend_only else "reflex.log")
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ATS_", "REDIS_URL", "DATABASE_URL", "SMARTAPI_"))
        }
        self.env = {
            **base,
            "PATH": f"{VENV_BIN}:{base.get('PATH', '')}",
            "REFLEX_TELEMETRY_ENABLED": "false",
            "ATS_DATA_DIR": str(data_dir),
            # Watch only an empty folder: a source file edited meanwhile (by a developer, in
            # this checkout) must not hot-reload the backend and restart its services mid-test.
            "REFLEX_HOT_RELOAD_OVERRIDE_PATHS": str(self._no_reload_dir()),
            "API_URL": f"http://localhost:{self.backend_port}",
            "SIMULATOR_PORT": str(self.simulator_port),
            **(env or {}),
        }
        if ports_by_env:
            self.env["BACKEND_PORT"] = str(self.backend_port)
            if not backend_only:
                self.env["FRONTEND_PORT"] = str(self.frontend_port)
        self.proc: subprocess.Popen | None = None

    def _no_reload_dir(self) -> Path:
        path = self.data_dir.parent / "no-reload"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    @property
    def frontend(self) -> str:
        return f"http://localhost:{self.frontend_port}"

    def start(self, timeout: float) -> None:
        args = [str(VENV_BIN / "reflex"), "run", "--loglevel", "info"]
        if not self.ports_by_env:
            args += ["--backend-port", str(self.backend_port)]
        if self.backend_only:
            args.append("--backend-only")
        elif not self.ports_by_env:
            args += ["--frontend-port", str(self.frontend_port)]
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # Own process group: stop() sends SIGINT to the group, exactly like Ctrl-C in a terminal.
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for(f"{self.backend}/ping", timeout)
        if not self.backend_only:
            self.wait_for(f"{self.frontend}/login", timeout)

    def wait_for(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"reflex exited early:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{url} not up after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()
