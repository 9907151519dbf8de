"""Children of `tidepool up`: start, health-check, restart with backoff, stop in order.

Each part runs as its own `python -m tidepool <part>` process — the same command a user would run alone — with its
output in `<data-dir>/logs/<part>.log` and its pid in `<data-dir>/run/<part>.pid`. A child that exits on its own is
reported and restarted after a backoff (1 s doubling to 30 s, reset once it has stayed up for a minute).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tidepool.logs import get_logger

log = get_logger("up")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0


@dataclass
class Child:
    """One supervised part: its argv, how to tell it is healthy, and its restart bookkeeping."""

    name: str
    args: list[str]
    log_path: Path
    pid_path: Path | None = None
    healthy: Callable[[], bool] = field(default=lambda: True)
    restart: bool = True
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_START
    restart_at: float | None = None
    restarts: int = 0

    def start(self, log_level: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tidepool", "--log-level", log_level, *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            )
        self.started_at = time.monotonic()
        self.restart_at = None
        if self.pid_path is not None:
            self.pid_path.parent.mkdir(parents=True, exist_ok=True)
            self.pid_path.write_text(f"{self.process.pid}\n")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the part flushes and exits), then SIGKILL if it takes longer than `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()


class Supervisor:
    """Starts children in order, keeps them running, and stops them in reverse order."""

    def __init__(self, log_level: str) -> None:
        self.children: list[Child] = []
        self.log_level = log_level
        self.stopping = False

    def add(self, child: Child) -> None:
        self.children.append(child)

    def start(self, child: Child, wait_healthy: float = 30.0) -> None:
        """Start `child` and wait until it reports healthy; raise RuntimeError with its log tail if it can't."""
        child.start(self.log_level)
        deadline = time.monotonic() + wait_healthy
        while time.monotonic() < deadline:
            if not child.running:
                raise RuntimeError(
                    f"{child.name} exited with code {child.process.returncode if child.process else '?'} "
                    f"while starting; last lines of {child.log_path}:\n{child.tail(10)}"
                )
            if child.healthy():
                log.info(
                    "%s is up (pid %d, log %s)", child.name, child.process.pid if child.process else 0, child.log_path
                )
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"{child.name} not healthy after {wait_healthy:.0f}s; see {child.log_path}:\n{child.tail(10)}"
        )

    def watch(self) -> list[str]:
        """One supervision step: report and schedule restarts of exited children. Returns event messages."""
        events: list[str] = []
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                continue
            if child.running:
                if now - child.started_at > STABLE_AFTER:
                    child.backoff = BACKOFF_START
                continue
            if child.restart_at is None:
                code = child.process.returncode
                if not child.restart:
                    continue
                child.restart_at = now + child.backoff
                events.append(f"{child.name} exited with code {code}; restarting in {child.backoff:.0f}s")
                log.warning(
                    "%s exited with code %s; restarting in %.0fs. Last lines of its log:\n%s",
                    child.name,
                    code,
                    child.backoff,
                    child.tail(),
                )
                child.backoff = min(child.backoff * 2, BACKOFF_MAX)
            elif now >= child.restart_at:
                child.restarts += 1
                child.start(self.log_level)
                events.append(f"{child.name} restarted (restart #{child.restarts})")
                log.info("%s restarted (pid %d)", child.name, child.process.pid if child.process else 0)
        return events

    def stop_all(self) -> None:
        """Stop in reverse start order: producers first, the database last, so every part can flush downstream."""
        self.stopping = True
        for child in reversed(self.children):
            if child.running:
                log.info("stopping %s", child.name)
                child.stop()
