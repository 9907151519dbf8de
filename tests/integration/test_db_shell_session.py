"""`tidepool sql` driven as a person would (pexpect on a pseudo-terminal) and as a script runner."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.integration.test_db_http_server import DbServer, start_db, stop_db, write


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbServer]:
    server = start_db(tmp_path_factory.mktemp("shell") / "data")
    write(server, b"kafka_consumer,sensor=s1 temperature=21.5,humidity=40i 1690510331000000000\n")
    yield server
    stop_db(server)


def _port(server: DbServer) -> str:
    return server.url.rsplit(":", 1)[1]


def _stuck(child: pexpect.spawn) -> str:
    """What a shell that stopped answering was doing: terminal modes, process state, every thread's Python stack.

    The child runs with PYTHONFAULTHANDLER=1, so SIGABRT makes it print its stacks (to the terminal) and die.
    """
    lines = []
    try:
        lflag = termios.tcgetattr(child.child_fd)[3]
        lines.append(f"terminal: echo={bool(lflag & termios.ECHO)} icanon={bool(lflag & termios.ICANON)}")
    except termios.error as exc:
        lines.append(f"terminal: {exc}")
    try:
        status = Path(f"/proc/{child.pid}/status").read_text().splitlines()
        lines += [line for line in status if line.startswith("State:")]
        lines.append("wchan: " + Path(f"/proc/{child.pid}/wchan").read_text())
    except OSError as exc:
        lines.append(f"process: {exc}")
    child.kill(signal.SIGABRT)
    with contextlib.suppress(pexpect.TIMEOUT):
        child.expect(pexpect.EOF, timeout=10)
    lines.append(f"output after the last match, then the stacks:\n{child.before}")
    return "\n".join(lines)


def test_tutorial_session_connect_select_describe_quit(db: DbServer, tmp_path: Path) -> None:
    env = dict(os.environ, TIDEPOOL_SQL_HISTORY=str(tmp_path / "history"), TERM="dumb")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tidepool", "sql", "--port", _port(db)],
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(40, 160),
    )
    try:
        child.expect("public ❯ ")
        child.sendline("\\c public")
        child.expect("public ❯ ")
        child.sendline("select * from kafka_consumer;")
        child.expect(r"\| time\s+\| sensor \| temperature \| humidity \|")
        child.expect(r"\| 2023-07-28T02:12:11 \| s1\s+\| 21.5\s+\| 40\s+\|")
        child.expect("Query took")
        child.expect("public ❯ ")
        child.sendline("select humidity")  # a statement over two lines
        child.sendline("from kafka_consumer;")
        child.expect(r"\| 40\s+\|")
        child.expect("public ❯ ")
        child.sendline("\\d")
        child.expect(r"\| kafka_consumer \|")
        child.expect("public ❯ ")
        child.sendline("\\d kafka_consumer")
        child.expect(r"\| temperature \| DOUBLE\s+\| FIELD\s+\| DEFAULT\s+\|")
        child.expect("public ❯ ")
        child.sendline("\\c nope")
        child.expect('422 Unprocessable Entity, details: .*Database not found: \\\\"nope\\\\"')
        child.expect("public ❯ ")
        child.sendline("\\q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "select * from kafka_consumer;" in (tmp_path / "history").read_text()


def test_script_mode_runs_statements_and_fails_on_error(db: DbServer, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "tidepool", "sql", "--port", _port(db), "--format", "csv", "-q"]
    ok = subprocess.run([*base, "-e", "select humidity from kafka_consumer"], capture_output=True, timeout=60)
    assert (ok.returncode, ok.stdout) == (0, b"humidity\n40\n")
    script = tmp_path / "script.sql"
    script.write_text("-- a comment\nselect 1;\nselect * from missing_table;\nselect 2;\n")
    failed = subprocess.run([*base, "-f", str(script)], capture_output=True, timeout=60)
    assert failed.returncode == 1
    assert failed.stdout == b"Int64(1)\n1\n"
    assert b"422 Unprocessable Entity, details: " in failed.stderr
    piped = subprocess.run(base, input=b"\\c public\nUSE public;\nselect 3;\n", capture_output=True, timeout=60)
    assert (piped.returncode, piped.stdout) == (0, b"Int64(3)\n3\n")


def test_password_prompt_and_unreachable_server(db: DbServer, tmp_path: Path) -> None:
    from tests.conftest import free_port

    env = dict(os.environ, TIDEPOOL_SQL_HISTORY=str(tmp_path / "history"), TERM="dumb", PYTHONFAULTHANDLER="1")
    child = pexpect.spawn(
        sys.executable, ["-m", "tidepool", "sql", "--port", _port(db), "-p", "-d", "public"], env=env,
        encoding="utf-8", timeout=60,
    )  # fmt: skip
    try:
        child.expect("password: ")
        child.sendline("")
        child.expect("public ❯ ")
        child.sendline("\\db")
        child.expect(r"\| database_name \|")
        child.expect("public ❯ ")
        child.sendline("quit")
        child.expect(pexpect.EOF)
    except pexpect.TIMEOUT:
        raise AssertionError(f"the shell stopped answering:\n{_stuck(child)}") from None
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    closed = subprocess.run(
        [sys.executable, "-m", "tidepool", "sql", "--port", str(free_port()), "-e", "select 1"],
        capture_output=True,
        timeout=60,
    )
    assert closed.returncode == 1
    assert b"cannot reach http://localhost:" in closed.stderr
