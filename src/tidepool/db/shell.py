"""`tidepool sql`: the interactive SQL shell, like cnosdb-cli, talking to the database over HTTP only.

It speaks CnosDB's HTTP API and nothing else (it never imports the engine), so it works against tidepool and a
real CnosDB alike. Every statement is `POST /api/v1/sql?tenant=&db=` with Basic auth and `Accept:` set to the
output format; the server renders the result (the table format is CnosDB's own ASCII table).

Interactive input is read with prompt-toolkit (history in ~/.tidepool_sql_history, or $TIDEPOOL_SQL_HISTORY); a
statement may span lines and ends with `;`. Backslash commands and `USE db` act at once. With `-e` or `-f`, or
with statements piped on stdin, the shell runs them and exits, non-zero at the first error.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

FORMATS = {
    "table": "text/table",
    "csv": "text/csv",
    "tsv": "text/tsv",
    "json": "application/json",
    "nd-json": "application/nd-json",
}
PASSWORD_PROMPT = "\0prompt"

HELP = """\
\\q                  quit
\\c DB | USE DB      switch database (checked with DESCRIBE DATABASE)
\\d                  list tables (SHOW TABLES)
\\d TABLE            describe a table (DESCRIBE TABLE)
\\db                 list databases (SHOW DATABASES)
\\db DB              describe a database (DESCRIBE DATABASE)
\\timing             toggle printing how long each statement took
\\pset format FMT    output format: table, csv, tsv, json, nd-json
\\quiet [true|false] toggle quiet mode
\\?                  this help
Statements end with ';' and may span lines; lines starting with -- are comments."""


class ShellError(Exception):
    """A statement failed; `message` is what cnosdb-cli prints (`422 Unprocessable Entity, details: {...}`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Session:
    """Where statements go and how results print."""

    host: str
    port: int
    user: str
    password: str
    tenant: str
    database: str
    output: str = "table"
    timing: bool = True
    quiet: bool = False
    timeout_s: float = 300.0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _auth_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def post_sql(self, sql: str, database: str | None = None) -> bytes:
        """The body of a successful `/api/v1/sql` answer, or ShellError with the server's status and details."""
        query = urllib.parse.urlencode({"tenant": self.tenant, "db": database or self.database, "chunked": "false"})
        request = urllib.request.Request(
            f"{self.base_url}/api/v1/sql?{query}",
            data=sql.encode(),
            method="POST",
            headers={"Authorization": self._auth_header(), "Accept": FORMATS[self.output]},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            details = error.read().decode("utf-8", errors="replace")
            raise ShellError(f"{error.code} {error.reason}, details: {details}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ShellError(f"cannot reach {self.base_url}: {reason}") from None

    def ping(self) -> dict[str, str]:
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v1/ping", timeout=10) as response:
                return dict(json.loads(response.read()))
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ShellError(f"cannot reach {self.base_url}: {reason}") from None

    def run_sql(self, sql: str) -> None:
        started = time.perf_counter()
        body = self.post_sql(sql)
        elapsed = time.perf_counter() - started
        if body:
            text = body.decode("utf-8", errors="replace")
            self.emit(text if text.endswith("\n") else text + "\n")
        if self.timing and not self.quiet:
            self.emit(f"Query took {elapsed:.3f} seconds.\n")

    def emit(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    # commands --------------------------------------------------------------------------------------------------

    def use(self, database: str) -> None:
        name = database.strip().rstrip(";").strip()
        if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
            name = name[1:-1]
        quoted = name.replace('"', '""')
        saved, self.output = self.output, "csv"
        try:
            self.post_sql(f'DESCRIBE DATABASE "{quoted}"', database=name)
        finally:
            self.output = saved
        self.database = name

    def command(self, line: str) -> bool:
        """Run a backslash command; False means quit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name == "\\q":
            return False
        if name == "\\c":
            if not arg:
                raise ShellError("usage: \\c DATABASE")
            self.use(arg)
        elif name == "\\d":
            self.run_sql(f"DESCRIBE TABLE {arg}" if arg else "SHOW TABLES")
        elif name == "\\db":
            self.run_sql(f"DESCRIBE DATABASE {arg}" if arg else "SHOW DATABASES")
        elif name == "\\timing":
            self.timing = not self.timing if not arg else arg.lower() in ("on", "true")
            self.emit(f"Timing is {'on' if self.timing else 'off'}.\n")
        elif name == "\\quiet":
            self.quiet = not self.quiet if not arg else arg.lower() in ("on", "true")
        elif name == "\\pset":
            key, _, value = arg.partition(" ")
            if key != "format" or value.strip() not in FORMATS:
                raise ShellError(f"usage: \\pset format {{{','.join(FORMATS)}}}")
            self.output = value.strip()
        elif name in ("\\?", "\\h", "\\help"):
            self.emit(HELP + "\n")
        else:
            raise ShellError(f"unknown command {name}; \\? lists the commands")
        return True

    def run(self, statement: str) -> bool:
        """Run one statement or command; False means quit."""
        text = statement.strip()
        if not text:
            return True
        if text.startswith("\\"):
            return self.command(text)
        words = text.rstrip(";").split(None, 1)
        if words[0].upper() in ("QUIT", "EXIT") and len(words) == 1:
            return False
        if words[0].upper() == "USE" and len(words) == 2:
            self.use(words[1])
            return True
        self.run_sql(text.rstrip().rstrip(";"))
        return True


# --- splitting input into statements --------------------------------------------------------------------------


def _statement_complete(buffer: str) -> bool:
    """True when `buffer` holds complete statements: ends with `;` outside quotes and comments."""
    return bool(buffer.strip()) and _split(buffer)[1].strip() == ""


def _split(text: str) -> tuple[list[str], str]:
    """(complete statements without their `;`, the unfinished rest); quotes and `--` comments respected."""
    statements: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif char == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end == -1 else end
            continue
        elif char == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(char)
        i += 1
    return statements, "".join(current)


def script_statements(text: str) -> Iterator[str]:
    """Statements and backslash commands of a script, in order."""
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending.strip() and (stripped.startswith("\\") or _is_use(stripped)):
            yield stripped
            continue
        pending += line + "\n"
        statements, pending = _split(pending)
        yield from statements
    if pending.strip():
        yield pending.strip()


def _is_use(line: str) -> bool:
    words = line.rstrip(";").split()
    return len(words) == 2 and words[0].upper() == "USE"


# --- the command ------------------------------------------------------------------------------------------------


def _interactive(session: Session) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history_path = os.environ.get("TIDEPOOL_SQL_HISTORY") or str(Path.home() / ".tidepool_sql_history")
    try:
        history: FileHistory | InMemoryHistory = FileHistory(history_path)
    except OSError:
        history = InMemoryHistory()
    prompt: PromptSession[str] = PromptSession(history=history)
    buffer = ""
    while True:
        marker = f"{session.database} ❯ " if not buffer else f"{' ' * len(session.database)} … "
        try:
            line = prompt.prompt(marker)
        except KeyboardInterrupt:
            buffer = ""
            continue
        except EOFError:
            return 0
        stripped = line.strip()
        if not buffer and (stripped.startswith("\\") or _is_use(stripped) or stripped.lower() in ("quit", "exit")):
            statements = [stripped]
        else:
            buffer += line + "\n"
            if not _statement_complete(buffer):
                continue
            statements, _ = _split(buffer)
            buffer = ""
        for statement in statements:
            try:
                if not session.run(statement):
                    return 0
            except ShellError as error:
                session.emit(error.message + "\n")


def _script(session: Session, text: str) -> int:
    for statement in script_statements(text):
        try:
            if not session.run(statement):
                return 0
        except ShellError as error:
            sys.stderr.write(error.message + "\n")
            return 1
    return 0


@click.command(context_settings={"help_option_names": ["--help"]})
@click.option("-H", "--host", default="localhost", show_default=True, help="Database host.")
@click.option("-P", "--port", default=8902, show_default=True, type=int, help="HTTP port.")
@click.option("-u", "--user", default="root", show_default=True, help="User name.")
@click.option(
    "-p",
    "--password",
    default="",
    is_flag=False,
    flag_value=PASSWORD_PROMPT,
    help="Password; given without a value, it is asked for.",
)
@click.option("-d", "--database", default="public", show_default=True, help="Database to start in.")
@click.option("-t", "--tenant", default="cnosdb", show_default=True, help="Tenant.")
@click.option(
    "--format",
    "output",
    type=click.Choice(list(FORMATS)),
    default="table",
    show_default=True,
    help="How results print (the server renders them).",
)
@click.option("-e", "--execute", "statements", multiple=True, help="Run these statements and exit.")
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run the statements in this file and exit.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not print timings.")
def sql(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    tenant: str,
    output: str,
    statements: tuple[str, ...],
    files: tuple[Path, ...],
    quiet: bool,
) -> int:
    """Interactive SQL shell for tidepool db (or CnosDB), over HTTP."""
    if password == PASSWORD_PROMPT:
        password = click.prompt("password", hide_input=True, default="", show_default=False)
    session = Session(host, port, user, password, tenant, database, output=output, quiet=quiet)
    scripted = bool(statements or files) or not sys.stdin.isatty()
    if scripted:
        if statements:
            code = _script(session, "\n".join(s if s.rstrip().endswith(";") else s + ";" for s in statements))
            if code:
                return code
        for path in files:
            code = _script(session, path.read_text())
            if code:
                return code
        if not statements and not files:
            return _script(session, sys.stdin.read())
        return 0
    try:
        session.ping()
    except ShellError as error:
        sys.stderr.write(error.message + "\n")
        return 1
    return _interactive(session)
