"""SQL text utilities: a small tokenizer, statement splitting, identifiers, and CnosDB → DataFusion rewrites.

CnosDB speaks DataFusion's dialect plus a few statements and functions of its own. The statements are parsed
here (tokens are enough for them); everything else goes to DataFusion after `rewrite_functions` turned
CnosDB-only functions into DataFusion ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from tidepool.db import errors
from tidepool.db.catalog import parse_duration

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<op><>|!=|>=|<=|::|[(),;=<>.*+\-/%@:\[\]{}|&^~!?])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class Token:
    kind: str  # string, quoted, number, word, op
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text

    @property
    def value(self) -> str:
        """The token as a name or literal: quotes removed, unquoted words lower-cased (as DataFusion does)."""
        if self.kind == "string":
            return self.text[1:-1].replace("''", "'")
        if self.kind == "quoted":
            return self.text[1:-1].replace('""', '"')
        if self.kind == "word":
            return self.text.lower()
        return self.text


def tokenize(sql: str) -> list[Token]:
    tokens = []
    pos = 0
    while pos < len(sql):
        match = _TOKEN_RE.match(sql, pos)
        assert match is not None  # `other` matches any character
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return tokens


def split_statements(sql: str) -> list[str]:
    """The statements of `sql` that have any tokens, split on `;` outside quotes and comments."""
    statements, start = [], 0
    for token in tokenize(sql):
        if token.text == ";" and token.kind == "op":
            statements.append(sql[start : token.start])
            start = token.end
    statements.append(sql[start:])
    return [s.strip() for s in statements if tokenize(s)]


class Cursor:
    """Reads a token list left to right; every `expect_*` raises CnosDB's parser error on a mismatch."""

    def __init__(self, sql: str, tokens: list[Token], end: str = "EOF") -> None:
        self.sql = sql
        self.tokens = tokens
        self.pos = 0
        self.end = end  # how the end is shown in errors: `;` if the statement had one, as CnosDB shows it

    def found(self) -> str:
        """The next token's text, for an error message."""
        token = self.peek()
        return token.text if token else self.end

    def peek(self, ahead: int = 0) -> Token | None:
        index = self.pos + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise errors.sql_parser(f"Expected more tokens, found: {self.end}")
        self.pos += 1
        return token

    def accept(self, *words: str) -> bool:
        """Consume `words` (keywords or punctuation) if they come next."""
        for i, word in enumerate(words):
            token = self.peek(i)
            if token is None or token.upper != word:
                return False
        self.pos += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise errors.sql_parser(f"Expected {' '.join(words)}, found: {self.found()}")

    def name(self) -> str:
        token = self.next()
        if token.kind not in ("word", "quoted", "string"):
            raise errors.sql_parser(f"Expected identifier, found: {token.text}")
        return token.value

    def rest(self) -> str:
        """The remaining SQL text, verbatim."""
        token = self.peek()
        return self.sql[token.start :].strip() if token else ""

    def text_until(self, *stop_words: str) -> str:
        """Raw SQL from here up to (not including) the first top-level keyword in `stop_words`."""
        depth = 0
        start = self.peek()
        if start is None:
            return ""
        while not self.at_end():
            token = self.peek()
            assert token is not None
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
            elif depth == 0 and token.upper in stop_words:
                break
            self.pos += 1
        end = self.tokens[self.pos - 1].end if self.pos > 0 else start.start
        return self.sql[start.start : end].strip()


def identifiers(sql: str) -> set[str]:
    """Names a piece of SQL may refer to: words and quoted identifiers, lower-cased/unquoted as DataFusion does."""
    return {t.value for t in tokenize(sql) if t.kind in ("word", "quoted")}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- CnosDB functions → DataFusion -------------------------------------------------------------------------

_FUNC_RE = re.compile(r"\b(first|last|time_window|increase)\s*\(", re.IGNORECASE)
_TRAILING_ORDER_BY = re.compile(r"\s+ORDER\s+BY\s+.*\Z", re.IGNORECASE | re.DOTALL)


def rewrite_functions(sql: str) -> str:
    """Rewrite CnosDB-only functions: `first(time, v)` / `last(time, v)` → `first_value(v ORDER BY time)` /
    `last_value(...)` (named as CnosDB names them when they are a whole select item), and
    `time_window(time, '10m'[, '5m'])` → a {start, end} struct built from `date_bin`; a sliding window (a slide
    shorter than the window) also turns the table in FROM into one row per (row, window containing it)."""
    slides: set[tuple[str, int, int]] = set()
    rewritten = _rewrite_calls(sql, slides)
    if not slides:
        return rewritten
    if len(slides) > 1:
        raise errors.not_implemented("more than one sliding time_window in a query")
    ((time_arg, window, slide),) = slides
    return _expand_windows(rewritten, time_arg, slide, window // slide)


def _rewrite_calls(sql: str, slides: set[tuple[str, int, int]]) -> str:
    out = []
    pos = 0
    while True:
        match = _FUNC_RE.search(sql, pos)
        if match is None:
            out.append(sql[pos:])
            return "".join(out)
        before = sql[: match.start()].rstrip()
        if before.endswith(".") or _inside_quotes(sql, match.start()):
            out.append(sql[pos : match.end()])
            pos = match.end()
            continue
        close = _matching_paren(sql, match.end() - 1)
        args = _split_args(sql[match.end() : close])
        name = match.group(1).lower()
        replacement = None
        if name in ("first", "last") and len(args) == 2:
            time_arg, value_arg = (_rewrite_calls(a, slides) for a in args)
            fn = "first_value" if name == "first" else "last_value"
            replacement = f"{fn}({value_arg} ORDER BY {time_arg} ASC)"
            if _is_bare_select_item(sql, match.start(), close + 1):
                label = f"{name}({_qualified(sql, time_arg)},{_qualified(sql, value_arg)})"
                replacement += f" AS {quote_ident(label)}"
        elif name == "increase" and len(args) == 2:
            # CnosDB writes `increase(time, x ORDER BY time)`; the aggregate orders by time itself.
            value_arg = _TRAILING_ORDER_BY.sub("", args[1])
            replacement = f"increase({_rewrite_calls(args[0], slides)}, {_rewrite_calls(value_arg, slides)})"
        elif name == "time_window":
            replacement = _time_window(sql, match.start(), close + 1, [_rewrite_calls(a, slides) for a in args], slides)
        if replacement is None:
            out.append(sql[pos : match.end()])
            pos = match.end()
            continue
        out.append(sql[pos : match.start()])
        out.append(replacement)
        pos = close + 1


_SESSION_RE = re.compile(r"\b(current_database|current_tenant)\s*\(\s*\)", re.IGNORECASE)


def rewrite_session_functions(sql: str, tenant: str, database: str) -> str:
    """`current_database()` / `current_tenant()` → the session's names as literals (named as CnosDB names them
    when they are a whole select item)."""
    out, pos = [], 0
    for match in _SESSION_RE.finditer(sql):
        if _inside_quotes(sql, match.start()):
            continue
        name = match.group(1).lower()
        literal = quote_literal(database if name == "current_database" else tenant)
        if _is_bare_select_item(sql, match.start(), match.end()):
            literal += f" AS {quote_ident(name + '()')}"
        out.append(sql[pos : match.start()])
        out.append(literal)
        pos = match.end()
    out.append(sql[pos:])
    return "".join(out)


def _time_window(sql: str, start: int, end: int, args: list[str], slides: set[tuple[str, int, int]]) -> str:
    if not 2 <= len(args) <= 3:
        raise errors.invalid_time_window("time_window needs (time, window_duration[, slide_duration])")
    window = _duration_ns(args[1])
    slide = _duration_ns(args[2]) if len(args) == 3 else window
    if window is None or slide is None:
        interval = args[1].strip()  # an INTERVAL expression: tumbling only
        if len(args) == 3 and args[2].strip() != interval:
            raise errors.not_implemented("sliding time_window with INTERVAL durations; use strings like '10m'")
        bucket = f"date_bin({interval}, {args[0]})"
        expr = f"named_struct('start', {bucket}, 'end', {bucket} + {interval})"
    elif slide >= window:
        if slide > window:
            raise errors.not_implemented("time_window with a slide longer than the window")
        bucket = f"date_bin({_interval(window)}, {args[0]})"
        expr = f"named_struct('start', {bucket}, 'end', {bucket} + {_interval(window)})"
    else:
        if window % slide or window // slide > 1000:
            raise errors.invalid_time_window("the window duration must be a multiple (at most 1000) of the slide")
        slides.add((args[0].strip(), window, slide))
        expr = f"named_struct('start', {_WINDOW_START}, 'end', {_WINDOW_START} + {_interval(window)})"
    if _is_bare_select_item(sql, start, end):
        label = ",".join([_qualified(sql, args[0].strip()), *(_literal_label(a) for a in args[1:])])
        expr += f" AS {quote_ident(f'TIME_WINDOW({label})')}"
    return expr


_INTERVAL_LITERAL = re.compile(r"INTERVAL\s+'\s*(\d+)\s*([A-Za-z]+)\s*'\Z", re.IGNORECASE)
_INTERVAL_FIELDS = {
    "year": (12, 0, 0), "month": (1, 0, 0), "week": (0, 7, 0), "day": (0, 1, 0), "hour": (0, 0, 3600 * 10**9),
    "minute": (0, 0, 60 * 10**9), "second": (0, 0, 10**9), "millisecond": (0, 0, 10**6),
    "microsecond": (0, 0, 10**3), "nanosecond": (0, 0, 1),
}  # fmt: skip


def _literal_label(arg: str) -> str:
    """An argument as DataFusion 27 names it in a column name: `Utf8("10m")`, `IntervalMonthDayNano("...")`."""
    text = arg.strip()
    if text.startswith("'") and text.endswith("'"):
        return f'Utf8("{text[1:-1]}")'
    match = _INTERVAL_LITERAL.match(text)
    if match:
        unit = match.group(2).lower().rstrip("s")
        if unit in _INTERVAL_FIELDS:
            months, days, nanos = (int(match.group(1)) * f for f in _INTERVAL_FIELDS[unit])
            return f'IntervalMonthDayNano("{(months << 96) | (days << 64) | nanos}")'
    return text


_WINDOW_START = '"__time_window_start"'
_FROM_TABLE = re.compile(
    r"\bFROM\s+((?:\"[^\"]+\"|[^\W\d][\w$]*)(?:\s*\.\s*(?:\"[^\"]+\"|[^\W\d][\w$]*))?)"
    r"(?:\s+(?:AS\s+)?(?!(?:WHERE|GROUP|ORDER|LIMIT|OFFSET|HAVING|UNION|JOIN|INNER|LEFT|RIGHT|FULL|CROSS|NATURAL)\b)"
    r"([^\W\d][\w$]*|\"[^\"]+\"))?",
    re.IGNORECASE,
)


def _expand_windows(sql: str, time_arg: str, slide: int, count: int) -> str:
    """`FROM t [alias]` → `FROM (SELECT *, unnest([each window start containing time]) FROM t) AS alias`."""
    match = _FROM_TABLE.search(sql)
    if match is None or re.search(r"\bJOIN\b", sql[match.end() :], re.IGNORECASE):
        raise errors.not_implemented("sliding time_window over anything but one table")
    table, alias = match.group(1), match.group(2)
    if alias is None:
        alias = table.split(".")[-1].strip()
    step = _interval(slide)
    bucket = f"date_bin({step}, {time_arg})"
    starts = ", ".join([bucket] + [f"{bucket} - {_interval(slide * j)}" for j in range(1, count)])
    source = f"(SELECT *, unnest(make_array({starts})) AS {_WINDOW_START} FROM {table}) AS {alias}"
    return sql[: match.start()] + "FROM " + source + sql[match.end() :]


def _duration_ns(arg: str) -> int | None:
    """A quoted CnosDB duration ('10m') in ns; None for anything else (an INTERVAL expression)."""
    text = arg.strip()
    if not (text.startswith("'") and text.endswith("'")):
        return None
    nanos = parse_duration(text[1:-1])
    if nanos is None:
        raise errors.invalid_time_window("window durations must be finite")
    return nanos


def _interval(nanos: int) -> str:
    return f"INTERVAL '{nanos} nanoseconds'"


def _inside_quotes(sql: str, index: int) -> bool:
    single = double = False
    for ch in sql[:index]:
        if ch == "'" and not double:
            single = not single
        elif ch == '"' and not single:
            double = not double
    return single or double


def _unquoted(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth with it) of each character of `text` from `start` that stands
    outside '...' and "..." (the quote marks themselves are skipped)."""
    depth = 0
    quote = None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        yield i, ch, depth


def _matching_paren(sql: str, open_index: int) -> int:
    for i, ch, depth in _unquoted(sql, open_index):
        if ch == ")" and depth == 0:
            return i
    raise errors.sql_parser("Expected ), found: EOF")


def _split_args(text: str) -> list[str]:
    args, start = [], 0
    for i, ch, depth in _unquoted(text):
        if ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
    if text.strip():
        args.append(text[start:].strip())
    return args


def _is_bare_select_item(sql: str, start: int, end: int) -> bool:
    """True if sql[start:end] is a whole item of a select list (preceded by SELECT or `,`, followed by `,` or
    FROM or the end), so it gets CnosDB's column name rather than an alias the user wrote."""
    before = sql[:start].rstrip()
    after = sql[end:].lstrip()
    preceded = before.endswith(",") or before.upper().endswith("SELECT")
    followed = after == "" or after.startswith(",") or after.upper().startswith("FROM") or after.startswith(";")
    return preceded and followed


def _qualified(sql: str, expr: str) -> str:
    """`time` → `air.time` when the query reads one table (CnosDB names columns of first/last that way)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", expr):
        return expr
    match = re.search(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*|\"[^\"]+\")", sql, re.IGNORECASE)
    if match is None:
        return expr
    table = match.group(1).strip('"')
    return f"{table}.{expr}"
