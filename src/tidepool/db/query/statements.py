"""One SQL statement → a QueryResult: CnosDB's own statements are handled here, queries go to DataFusion.

Result columns and types follow CnosDB (query_server/query/src/sql/planner.rs): `SHOW DATABASES` →
`database_name`, `SHOW TABLES` → `table_name`, `DESCRIBE TABLE` → column_name/data_type/column_type/
compression_codec, `SHOW SERIES` → `key`, `SHOW TAG VALUES` → key/value, `INSERT` → `rows` (UInt64);
DDL returns no columns and no rows.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from tidepool.db import errors
from tidepool.db.catalog import (
    FIELD_TYPES,
    PRECISIONS,
    Column,
    Database,
    DatabaseOptions,
    Table,
    check_name,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)
from tidepool.db.errors import DbError
from tidepool.db.query import gapfill
from tidepool.db.query.sql import (
    Cursor,
    Token,
    identifiers,
    quote_ident,
    rewrite_functions,
    rewrite_session_functions,
    split_statements,
    tokenize,
)
from tidepool.db.storage.memtable import dedup

if TYPE_CHECKING:
    from datafusion import SessionContext

    from tidepool.db.engine import Engine, QueryResult, TableSnapshot

_NO_ROWS = pa.schema([])
_QUERY_STARTS = {"SELECT", "WITH", "EXPLAIN", "VALUES", "("}
_ACCOUNT_WORDS = {"USER", "ROLE", "TENANT"}
_CODECS = {
    "BIGINT": {"DEFAULT", "NULL", "DELTA", "DELTATS", "QUANTILE"},
    "BIGINT UNSIGNED": {"DEFAULT", "NULL", "DELTA", "DELTATS", "QUANTILE"},
    "DOUBLE": {"DEFAULT", "NULL", "GORILLA", "QUANTILE"},
    "STRING": {"DEFAULT", "NULL", "GZIP", "BZIP", "ZSTD", "SNAPPY", "ZLIB"},
    "BOOLEAN": {"DEFAULT", "NULL", "BITPACK"},
}


def execute(engine: Engine, tenant: str, database: str, sql: str) -> QueryResult:
    statements = split_statements(sql)
    if len(statements) > 1:
        raise errors.multi_statement(len(statements), sql)
    if not statements:
        return _result(_NO_ROWS, [])
    statement = statements[0]
    tokens = tokenize(statement)
    cur = Cursor(statement, tokens, ";" if tokenize(sql)[-1].text == ";" else "EOF")
    first = tokens[0].upper
    second = tokens[1].upper if len(tokens) > 1 else ""
    if first in _QUERY_STARTS:
        return _datafusion_query(engine, tenant, database, statement)
    if first == "SHOW":
        return _show(engine, tenant, database, cur)
    if first in ("DESCRIBE", "DESC"):
        return _describe(engine, tenant, database, cur)
    if first == "CREATE" and second == "DATABASE":
        return _create_database(engine, tenant, cur)
    if first == "CREATE" and second == "TABLE":
        return _create_table(engine, tenant, database, cur)
    if first == "DROP" and second in ("DATABASE", "TABLE"):
        return _drop(engine, tenant, database, cur)
    if first == "ALTER" and second == "DATABASE":
        return _alter_database(engine, tenant, cur)
    if first == "ALTER" and second == "TABLE":
        return _alter_table(engine, tenant, database, cur)
    if first == "INSERT":
        return _insert(engine, tenant, database, cur)
    if first == "DELETE":
        return _delete(engine, tenant, database, cur)
    if first == "UPDATE":
        return _update(engine, tenant, database, cur)
    if first in ("GRANT", "REVOKE") or (first in ("CREATE", "DROP", "ALTER") and second in _ACCOUNT_WORDS):
        raise errors.not_implemented(f"{first} {second} (users and roles are handled by the HTTP API)")
    if first in ("CREATE", "DROP", "ALTER", "COPY", "RECOVER", "KILL"):
        raise errors.not_implemented(f"{first} {second}".strip())
    raise errors.sql_parser(f"Expected an SQL statement, found: {tokens[0].text}")


def _result(schema: pa.Schema, batches: list[pa.RecordBatch]) -> QueryResult:
    from tidepool.db.engine import QueryResult

    return QueryResult(schema, iter(batches))


def _table_result(table: pa.Table) -> QueryResult:
    return _result(table.schema, table.to_batches())


def _target_db(cur: Cursor, default: str) -> str:
    return cur.name() if cur.accept("ON") else default


# --- SHOW / DESCRIBE ---------------------------------------------------------------------------------------


def _show(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.expect("SHOW")
    if cur.accept("DATABASES"):
        with engine._lock:
            names = sorted(engine.catalog.tenants.get(tenant, {}))
        return _table_result(pa.table({"database_name": pa.array(names, pa.string())}))
    if cur.accept("TABLES"):
        db_name = _target_db(cur, database)
        _expect_end(cur)
        with engine._lock:
            names = sorted(engine.catalog.database(tenant, db_name).tables)
        return _table_result(pa.table({"table_name": pa.array(names, pa.string())}))
    if cur.accept("SERIES"):
        return _show_series(engine, tenant, database, cur)
    if cur.accept("TAG", "VALUES"):
        return _show_tag_values(engine, tenant, database, cur)
    raise errors.sql_parser(f"Expected DATABASES, TABLES, SERIES or TAG VALUES after SHOW, found: {cur.found()}")


def _describe(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.next()
    if cur.accept("DATABASE"):
        name = cur.name()
        _expect_end(cur)
        with engine._lock:
            options = engine.catalog.database(tenant, name).options
        row = {
            "ttl": format_duration(options.ttl_ns),
            "shard": options.shard,
            "vnode_duration": format_duration(options.vnode_duration_ns),
            "replica": options.replica,
            "precision": options.precision,
            "max_memcache_size": format_size(options.max_memcache_size),
            "memcache_partitions": options.memcache_partitions,
            "wal_max_file_size": format_size(options.wal_max_file_size),
            "wal_sync": options.wal_sync,
            "strict_write": options.strict_write,
            "max_cache_readers": options.max_cache_readers,
        }
        types = {bool: pa.bool_(), int: pa.uint64(), str: pa.string()}
        schema = pa.schema([(k, types[type(v)]) for k, v in row.items()])
        return _table_result(pa.Table.from_pylist([row], schema=schema))
    cur.accept("TABLE")
    name = cur.name()
    _expect_end(cur)
    with engine._lock:
        db = engine.catalog.database(tenant, database)
        table = db.tables.get(name)
        if table is None:
            raise errors.table_not_found(tenant, database, name)
        columns = [c for c in table.columns if c.kind == "TIME"] + [c for c in table.columns if c.kind != "TIME"]
    return _table_result(pa.table({
        "column_name": pa.array([c.name for c in columns], pa.string()),
        "data_type": pa.array([c.sql_type for c in columns], pa.string()),
        "column_type": pa.array([c.kind for c in columns], pa.string()),
        "compression_codec": pa.array([c.codec for c in columns], pa.string()),
    }))  # fmt: skip


def _show_series(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    db_name = _target_db(cur, database)
    cur.expect("FROM")
    table_name = cur.name()
    where = cur.text_until("ORDER", "LIMIT", "OFFSET") if cur.accept("WHERE") else ""
    order, limit, offset = _order_limit(cur)
    snapshot = engine.snapshot(tenant, db_name, table_name)
    try:
        fields = {f.name for f in snapshot.schema} - set(snapshot.tags) - {"time"}
        where = quote_numbers_compared_to(where, {f.name for f in snapshot.schema if pa.types.is_string(f.type)})
        for name in identifiers(where) & fields:
            raise errors.show_series_where_field(name)
        tags = snapshot.tags
        if tags:
            projection = ", ".join(quote_ident(t) for t in tags)
            sql = f"SELECT DISTINCT {projection} FROM {quote_ident(table_name)}"
        else:
            sql = f"SELECT DISTINCT 1 FROM {quote_ident(table_name)}"
        if where:
            sql += f" WHERE {where}"
        rows = _run_on_snapshot(engine, table_name, snapshot, sql).to_pylist()
    finally:
        engine.release(snapshot)
    keys = []
    for row in rows:
        parts = [table_name] + [f"{t}={row[t]}" for t in sorted(tags) if row.get(t) is not None]
        keys.append(",".join(parts))
    keys = [row[0] for row in _sorted_rows([(k,) for k in keys], order)]
    keys = keys[offset : offset + limit if limit is not None else None]
    return _table_result(pa.table({"key": pa.array(keys, pa.string())}))


def _show_tag_values(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    db_name = _target_db(cur, database)
    cur.expect("FROM")
    table_name = cur.name()
    cur.expect("WITH")
    cur.expect("KEY")
    snapshot = engine.snapshot(tenant, db_name, table_name)
    try:
        tags = snapshot.tags
        if cur.accept("="):
            keys = [cur.name()]
        elif cur.accept("!=") or cur.accept("<>"):
            excluded = cur.name()
            keys = [t for t in tags if t != excluded]
        elif cur.accept("IN"):
            keys = _name_list(cur)
        elif cur.accept("NOT", "IN"):
            excluded_set = set(_name_list(cur))
            keys = [t for t in tags if t not in excluded_set]
        else:
            raise errors.sql_parser(f"Expected =, !=, IN or NOT IN, found: {cur.found()}")
        where = ""
        if cur.accept("WHERE"):
            where = cur.text_until("ORDER", "LIMIT", "OFFSET")
        order, limit, offset = _order_limit(cur, ("key", "value"))
        fields = {f.name for f in snapshot.schema} - set(tags) - {"time"}
        where = quote_numbers_compared_to(where, {f.name for f in snapshot.schema if pa.types.is_string(f.type)})
        for name in identifiers(where) & fields:
            raise errors.show_series_where_field(name)  # CnosDB says SHOW SERIES here too
        pairs: list[tuple[str, str]] = []
        for key in sorted(k for k in keys if k in tags):
            sql = f"SELECT DISTINCT {quote_ident(key)} AS v FROM {quote_ident(table_name)} WHERE " \
                  f"{quote_ident(key)} IS NOT NULL" + (f" AND ({where})" if where else "")  # fmt: skip
            values = _run_on_snapshot(engine, table_name, snapshot, sql).column("v").to_pylist()
            pairs.extend((key, v) for v in sorted(values))
    finally:
        engine.release(snapshot)
    pairs = [(k, v) for k, v in _sorted_rows(pairs, order)]
    pairs = pairs[offset : offset + limit if limit is not None else None]
    return _table_result(pa.table({
        "key": pa.array([k for k, _ in pairs], pa.string()), "value": pa.array([v for _, v in pairs], pa.string())
    }))  # fmt: skip


def _name_list(cur: Cursor) -> list[str]:
    cur.expect("(")
    names = [cur.name()]
    while cur.accept(","):
        names.append(cur.name())
    cur.expect(")")
    return names


def _order_limit(cur: Cursor, columns: tuple[str, ...] = ("key",)) -> tuple[list[tuple[int, bool]], int | None, int]:
    """`[ORDER BY column [ASC|DESC], ...] [LIMIT n] [OFFSET m]` of a SHOW statement whose result has `columns`:
    ([(column index, descending)], limit, offset)."""
    order: list[tuple[int, bool]] = []
    limit: int | None = None
    offset = 0
    if cur.accept("ORDER", "BY"):
        while True:
            column = cur.name()
            if column not in columns:
                valid = ", ".join(columns)
                raise errors.datafusion(f"Schema error: No field named {column}. Valid fields are {valid}.")
            descending = cur.accept("DESC")
            if not descending:
                cur.accept("ASC")
            order.append((columns.index(column), descending))
            if not cur.accept(","):
                break
    if cur.accept("LIMIT"):
        limit = _count(cur)
    if cur.accept("OFFSET"):
        offset = _count(cur)
    _expect_end(cur)
    return order, limit, offset


def _sorted_rows(rows: Sequence[tuple[str, ...]], order: list[tuple[int, bool]]) -> list[tuple[str, ...]]:
    """`rows` sorted by all columns ascending, then by `order` (a stable sort per key, last key first)."""
    result = sorted(rows)
    for index, descending in reversed(order):
        result.sort(key=operator.itemgetter(index), reverse=descending)
    return result


def _count(cur: Cursor) -> int:
    token = cur.next()
    if token.kind != "number" or not token.text.isdigit():
        raise errors.sql_parser(f"Expected literal int, found: {token.text}")
    return int(token.text)


def _expect_end(cur: Cursor) -> None:
    token = cur.peek()
    if token is not None:
        raise errors.sql_parser(f"Expected end of statement, found: {token.text}")


# --- DDL ---------------------------------------------------------------------------------------------------


def _create_database(engine: Engine, tenant: str, cur: Cursor) -> QueryResult:
    cur.expect("CREATE", "DATABASE")
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = cur.name()
    check_name(name)
    options = DatabaseOptions()
    if cur.accept("WITH"):
        _apply_options(options, cur, creating=True)
    _expect_end(cur)
    engine.create_database(tenant, Database(name, options), if_not_exists)
    return _result(_NO_ROWS, [])


def _alter_database(engine: Engine, tenant: str, cur: Cursor) -> QueryResult:
    cur.expect("ALTER", "DATABASE")
    name = cur.name()
    cur.expect("SET")
    changes = DatabaseOptions()
    given = _apply_options(changes, cur, creating=False)
    _expect_end(cur)

    def change(db: Database) -> None:
        for key in given:
            setattr(db.options, key, getattr(changes, key))

    engine.update_database(tenant, name, change)
    return _result(_NO_ROWS, [])


def _apply_options(options: DatabaseOptions, cur: Cursor, creating: bool) -> list[str]:
    given = []
    while not cur.at_end():
        key = cur.next().upper
        if not creating and key not in ("TTL", "SHARD", "VNODE_DURATION", "REPLICA"):
            raise errors.sql_parser(
                "database config is unmodifiable, only can modify database option: TTL, SHARD, VNODE_DURATION, REPLICA"
            )
        value = cur.next().value
        if key == "TTL":
            options.ttl_ns = parse_duration(value)
            given.append("ttl_ns")
        elif key == "VNODE_DURATION":
            vnode = parse_duration(value)
            if vnode is None:
                raise errors.invalid_param("VNODE_DURATION must be finite")
            options.vnode_duration_ns = vnode
            given.append("vnode_duration_ns")
        elif key == "PRECISION":
            if value.upper() not in PRECISIONS:
                raise errors.invalid_param(f"precision '{value}' is not one of 'ms', 'us', 'ns'")
            options.precision = value.upper()
            given.append("precision")
        elif key in ("SHARD", "REPLICA", "MEMCACHE_PARTITIONS", "MAX_CACHE_READERS"):
            attr = key.lower()
            if not value.isdigit():
                raise errors.invalid_param(f"{key} must be a positive integer, found '{value}'")
            setattr(options, attr, int(value))
            given.append(attr)
        elif key in ("MAX_MEMCACHE_SIZE", "WAL_MAX_FILE_SIZE"):
            setattr(options, key.lower(), parse_size(value))
            given.append(key.lower())
        elif key in ("WAL_SYNC", "STRICT_WRITE"):
            setattr(options, key.lower(), value.lower() == "true")
            given.append(key.lower())
        else:
            raise errors.sql_parser(f"Expected database option, found: {key}")
    return given


def _create_table(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.expect("CREATE", "TABLE")
    if_not_exists = cur.accept("IF", "NOT", "EXISTS")
    name = cur.name()
    check_name(name)
    cur.expect("(")
    table = Table(name)
    seen: set[str] = set()
    while True:
        if cur.accept("TAGS"):
            cur.expect("(")
            while True:
                tag = cur.name()
                if tag in seen or tag == "time":
                    raise errors.DbError("010027", f"Semantic error: Field or Tag have the same name {tag}")
                seen.add(tag)
                table.columns.append(Column(tag, "TAG", "STRING"))
                if not cur.accept(","):
                    break
            cur.expect(")")
        else:
            column = cur.name()
            sql_type = _sql_type(cur, column)
            codec = "DEFAULT"
            if cur.accept("CODEC"):
                cur.expect("(")
                if cur.accept(")"):
                    raise errors.sql_parser("expect codec encoding type in ()")
                codec = cur.next().upper
                cur.expect(")")
                if not any(codec in allowed for allowed in _CODECS.values()):
                    raise errors.sql_parser(f"{codec} is not valid encoding")
                if codec not in _CODECS[sql_type]:
                    raise errors.DbError("010042", f"Semantic error: Unsupported encoding type {codec.title()} for "
                                                   f"{sql_type}")  # fmt: skip
            if column in seen or column == "time":
                raise errors.DbError("010027", f"Semantic error: Field or Tag have the same name {column}")
            seen.add(column)
            table.columns.append(Column(column, "FIELD", sql_type, codec))
        if not cur.accept(","):
            break
    cur.expect(")")
    _expect_end(cur)
    if not table.fields:
        raise errors.at_least_one_field()
    table.columns.sort(key=lambda c: c.kind != "TAG")  # as CnosDB: tags first, each group in declared order
    engine.create_table(tenant, database, table, if_not_exists)
    return _result(_NO_ROWS, [])


def _sql_type(cur: Cursor, column: str) -> str:
    word = cur.next().upper
    if word == "BIGINT":
        return "BIGINT UNSIGNED" if cur.accept("UNSIGNED") else "BIGINT"
    aliases = {"DOUBLE": "DOUBLE", "STRING": "STRING", "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN"}
    if word in aliases:
        return aliases[word]
    raise errors.DbError("010041", f"Semantic error: Unexpected data type {word} of {column}, ")


def _drop(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.expect("DROP")
    is_database = cur.accept("DATABASE")
    if not is_database:
        cur.expect("TABLE")
    if_exists = cur.accept("IF", "EXISTS")
    name = cur.name()
    _expect_end(cur)
    if is_database:
        engine.drop_database(tenant, name, if_exists)
    else:
        engine.drop_table(tenant, database, name, if_exists)
    return _result(_NO_ROWS, [])


def _alter_table(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.expect("ALTER", "TABLE")
    name = cur.name()
    if cur.accept("ADD", "TAG"):
        column = Column(cur.name(), "TAG", "STRING")
    elif cur.accept("ADD", "FIELD"):
        column_name = cur.name()
        column = Column(column_name, "FIELD", _sql_type(cur, column_name))
    elif cur.accept("DROP"):
        dropped = cur.name()
        _expect_end(cur)

        def drop(table: Table) -> None:
            existing = table.column(dropped)
            if existing is None:
                raise errors.column_not_exists(name, dropped)
            if existing.kind == "TIME":
                raise errors.drop_time_column()
            if existing.kind == "TAG":
                raise errors.DbError("010030", f"Semantic error: Can't drop tag column {dropped}.")
            if len(table.fields) == 1:
                raise errors.at_least_one_field()
            table.columns.remove(existing)

        engine.alter_table(tenant, database, name, drop)
        # Rewrite the files without the column, so that a later column of that name starts empty.
        engine.rewrite_table(tenant, database, name, lambda rows: rows, force=True)
        return _result(_NO_ROWS, [])
    else:
        raise errors.not_implemented("ALTER TABLE other than ADD TAG, ADD FIELD and DROP")
    _expect_end(cur)

    def add(table: Table) -> None:
        if table.column(column.name) is not None:
            raise errors.column_already_exists(name, column.name)
        table.columns.append(column)

    engine.alter_table(tenant, database, name, add)
    return _result(_NO_ROWS, [])


# --- DML ---------------------------------------------------------------------------------------------------


def _insert(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.expect("INSERT")
    cur.accept("INTO")
    name = cur.name()
    with engine._lock:
        db = engine.catalog.database(tenant, database)
        table = db.tables.get(name)
        if table is None:
            raise errors.table_not_found_in_plan(tenant, database, name)
        unit = db.options.time_unit
        columns_by_name = {c.name: c for c in table.columns}
    if cur.accept("("):
        targets = [cur.name()]
        while cur.accept(","):
            targets.append(cur.name())
        cur.expect(")")
    else:
        targets = [c.name for c in table.columns]
    for target in targets:
        if target not in columns_by_name:
            fields = ", ".join(columns_by_name)
            raise errors.insert_missing_column(target, fields)
    if "time" not in targets:
        raise errors.insert_missing_column("time", ", ".join(columns_by_name))
    rows = _literal_rows(cur)
    arrays: dict[str, pa.Array] = {}
    if rows is not None:
        if any(len(row) != len(targets) for row in rows):
            raise errors.insert_columns_mismatch()
        for index, target in enumerate(targets):
            arrays[target] = _literal_column([row[index] for row in rows], columns_by_name[target], unit)
    else:
        source = _run_datafusion(engine, tenant, database, rewrite_functions(cur.rest())).to_table()
        if source.num_columns != len(targets):
            raise errors.insert_columns_mismatch()
        for target, column in zip(targets, source.columns, strict=True):
            arrays[target] = _cast_insert_column(column.combine_chunks(), columns_by_name[target], unit)
    if pc.any(pc.is_null(arrays["time"])).as_py():
        raise errors.DbError("010023", "Column time cannot be null.")
    field_names = [t for t in targets if columns_by_name[t].kind == "FIELD"]
    if not field_names or all(arrays[f].null_count == len(arrays[f]) for f in field_names):
        raise errors.fields_empty()
    data = pa.table(arrays)
    written = engine.write_table(tenant, database, name, data) if data.num_rows else 0
    return _table_result(pa.table({"rows": pa.array([written], pa.uint64())}))


Literal = str | int | float | bool | None


def _literal_rows(cur: Cursor) -> list[list[Literal]] | None:
    """`VALUES (…), (…)` of plain literals, parsed here so that each column takes the table's type (a time may
    be an integer in one row and a string in the next, as CnosDB allows); None if DataFusion must evaluate it."""
    start = cur.pos
    if not cur.accept("VALUES"):
        return None
    rows: list[list[Literal]] = []
    while True:
        if not cur.accept("("):
            cur.pos = start
            return None
        row: list[Literal] = []
        while True:
            negative = cur.accept("-")
            token = cur.next()
            value: Literal
            if token.kind == "number":
                number = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
                value = -number if negative else number
            elif negative:
                cur.pos = start
                return None
            elif token.kind == "string":
                value = token.value
            elif token.kind == "word" and token.upper in ("NULL", "TRUE", "FALSE"):
                value = None if token.upper == "NULL" else token.upper == "TRUE"
            else:
                cur.pos = start
                return None
            row.append(value)
            if not cur.accept(","):
                break
        cur.expect(")")
        rows.append(row)
        if not cur.accept(","):
            break
    _expect_end(cur)
    return rows


def _literal_column(values: list[Literal], column: Column, unit: str) -> pa.Array:
    if column.kind == "TIME":
        times = [_time_literal(v, unit) for v in values]
        try:
            return pa.array(times, pa.int64()).cast(pa.timestamp(unit))
        except OverflowError:
            raise errors.datafusion("Arrow error: Cast error: time out of range") from None
    if column.kind == "TAG":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array([_field_value(v, column.sql_type) for v in values], FIELD_TYPES[column.sql_type])


_ARROW_NAMES = {"DOUBLE": "Float64", "BIGINT": "Int64", "BIGINT UNSIGNED": "UInt64", "BOOLEAN": "Boolean"}
_INT_RANGES = {"BIGINT": (-(2**63), 2**63 - 1), "BIGINT UNSIGNED": (0, 2**64 - 1)}


def _field_value(value: Literal, sql_type: str) -> Literal:
    """One INSERT literal as a value of a field's type, with Arrow's cast errors as CnosDB reports them."""
    if value is None:
        return None
    if sql_type == "STRING":
        return str(value).lower() if isinstance(value, bool) else str(value)
    name = _ARROW_NAMES[sql_type]
    if isinstance(value, str):
        try:
            return pa.scalar(value).cast(FIELD_TYPES[sql_type]).as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise _cast_error(f"Cannot cast string '{value}' to value of {name} type") from None
    if sql_type == "BOOLEAN":
        return bool(value)
    if sql_type == "DOUBLE":
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise _cast_error(f"Cannot cast value {value} to type {name} without losing its fraction")
    low, high = _INT_RANGES[sql_type]
    if not low <= int(value) <= high:
        raise _cast_error(f"Can't cast value {value} to type {name}")
    return int(value)


def _cast_error(detail: str) -> DbError:
    return DbError("010002", f"Arrow: Cast error: {detail}")


def _time_literal(value: Literal, unit: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        text = value.replace(" ", "T", 1) if "T" not in value else value
        for target in (pa.timestamp(unit), pa.timestamp(unit, tz="UTC")):  # naive means UTC, as in CnosDB
            try:
                return int(pa.scalar(text).cast(target).cast(pa.int64()).as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        raise errors.datafusion(f"Arrow error: Parser error: Error parsing timestamp from '{value}'")
    arrow_unit = {"ns": "Nanosecond", "us": "Microsecond", "ms": "Millisecond"}[unit]
    source = "Float64" if isinstance(value, float) else "Boolean"
    raise errors.datafusion(
        f"This feature is not implemented: Unsupported CAST from {source} to Timestamp({arrow_unit}, None)"
    )


def _cast_insert_column(values: pa.Array, column: Column, unit: str) -> pa.Array:
    try:
        if column.kind == "TIME":
            if pa.types.is_integer(values.type):  # an integer time is in the database's precision
                return values.cast(pa.int64()).cast(pa.timestamp(unit))
            return values.cast(pa.timestamp(unit))
        if column.kind == "TAG":
            return values.cast(pa.string())
        return values.cast(FIELD_TYPES[column.sql_type])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise errors.datafusion(f"Arrow error: Cast error: column {column.name}: {exc}") from None


def _delete(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    cur.expect("DELETE", "FROM")
    name = cur.name()
    alias = name
    if not cur.at_end() and cur.peek().upper != "WHERE":  # type: ignore[union-attr]
        alias = cur.name()  # `DELETE FROM t x WHERE ...`: CnosDB accepts (and ignores) an alias
    where = ""
    if cur.accept("WHERE"):
        where = cur.rest()
    else:
        _expect_end(cur)
    snapshot = engine.snapshot(tenant, database, name)
    engine.release(snapshot)
    fields = {f.name for f in snapshot.schema} - set(snapshot.tags) - {"time"}
    where = quote_numbers_compared_to(where, {f.name for f in snapshot.schema if pa.types.is_string(f.type)})
    if identifiers(where) & fields:
        raise errors.delete_on_field()
    # Validate the predicate before touching anything.
    source = f"{quote_ident(name)} AS {quote_ident(alias)}"
    _run_on_table(name, snapshot.schema.empty_table(), f"SELECT * FROM {source} WHERE {where}"
                  if where else f"SELECT * FROM {source}")  # fmt: skip

    def keep(data: pa.Table) -> pa.Table:
        if not where:
            return data.schema.empty_table()
        return _run_on_table(name, data, f"SELECT * FROM {source} WHERE ({where}) IS NOT TRUE")

    engine.rewrite_table(tenant, database, name, keep)
    return _result(_NO_ROWS, [])


def _update(engine: Engine, tenant: str, database: str, cur: Cursor) -> QueryResult:
    """`UPDATE t SET col = expr[, ...] [WHERE cond]`: fields or tags (not both, as CnosDB), never time."""
    cur.expect("UPDATE")
    name = cur.name()
    cur.expect("SET")
    assignments: dict[str, str] = {}
    while True:
        column = cur.name()
        cur.expect("=")
        expression = cur.text_until(",", "WHERE")
        if not expression:
            raise errors.sql_parser(f"Expected an expression after {column} =, found: EOF")
        assignments[column] = expression
        if not cur.accept(","):
            break
    where = cur.rest() if cur.accept("WHERE") else ""
    if not where:
        _expect_end(cur)
    snapshot = engine.snapshot(tenant, database, name)
    engine.release(snapshot)
    schema, tags = snapshot.schema, set(snapshot.tags)
    where = quote_numbers_compared_to(where, {f.name for f in schema if pa.types.is_string(f.type)})
    for column in assignments:
        if column == "time":
            raise errors.semantic("Column time does not support modification")
        if column not in schema.names:
            raise errors.column_not_exists(name, column)
    if len({column in tags for column in assignments}) > 1:
        raise errors.semantic("Cannot update tags and fields at the same time")
    condition = f"({where}) IS TRUE" if where else "TRUE"
    items = []
    for f in schema:
        column = quote_ident(f.name)
        if f.name in assignments:
            # Setting NULL changes nothing, as in CnosDB; the value takes the column's type (0 → false, ...).
            value = f"CAST(({assignments[f.name]}) AS {_SQL_CAST[str(f.type)]})"
            items.append(f"CASE WHEN {condition} AND {value} IS NOT NULL THEN {value} ELSE {column} END AS {column}")
        else:
            items.append(column)
    sql = f"SELECT {', '.join(items)} FROM {quote_ident(name)}"
    _run_on_table(name, schema.empty_table(), sql)  # validate before touching anything
    matched = _run_datafusion(engine, tenant, database, f"SELECT count(*) FROM {quote_ident(name)} WHERE {condition}")
    count = matched.to_table().column(0)[0].as_py()

    def updated(data: pa.Table) -> pa.Table:
        result = _run_on_table(name, data, sql)
        columns = [_cast_column(result.column(i), f) for i, f in enumerate(schema)]
        return dedup(pa.Table.from_arrays(columns, schema=schema), snapshot.tags)

    engine.rewrite_table(tenant, database, name, updated)
    return _table_result(pa.table({"rows": pa.array([count], pa.uint64())}))


_SQL_CAST = {"double": "DOUBLE", "int64": "BIGINT", "uint64": "BIGINT UNSIGNED", "string": "VARCHAR", "bool": "BOOLEAN"}


def _cast_column(values: pa.ChunkedArray, target: pa.Field) -> pa.ChunkedArray:
    try:
        return values.cast(target.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise errors.datafusion(f"Arrow error: Cast error: column {target.name}: {exc}") from None


# --- DataFusion ------------------------------------------------------------------------------------------


# A Rust panic inside DataFusion surfaces as pyo3's PanicException, a BaseException; it is answered as an error
# like any other, while the interpreter's own exits pass through.
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _context(database: str = "public") -> SessionContext:
    """A DataFusion session whose default schema is `database`, so bare names are its tables and `db.t` names
    another database's."""
    from datafusion import SessionConfig, SessionContext

    from tidepool.db.query import functions

    config = (
        SessionConfig()
        .with_target_partitions(2)
        .with_default_catalog_and_schema("datafusion", database)
        .with_create_default_catalog_and_schema(True)
    )
    ctx = SessionContext(config)
    functions.register(ctx)
    return ctx


def _run_on_table(name: str, data: pa.Table, sql: str) -> pa.Table:
    import pyarrow.dataset as ds

    ctx = _context()
    ctx.register_dataset(quote_ident(name), ds.dataset(data))
    try:
        return ctx.sql(sql).to_arrow_table()
    except _PASS_THROUGH:
        raise
    except BaseException as exc:  # DataFusion raises plain Exceptions with its message
        raise _map_error(exc, "", "") from None


def _run_on_snapshot(engine: Engine, name: str, snapshot: TableSnapshot, sql: str) -> pa.Table:
    ctx = _context()
    engine.register(ctx, name, snapshot)
    try:
        return ctx.sql(sql).to_arrow_table()
    except _PASS_THROUGH:
        raise
    except BaseException as exc:
        raise _map_error(exc, "", "") from None


def _datafusion_query(engine: Engine, tenant: str, database: str, sql: str) -> QueryResult:
    gap = gapfill.plan(sql)
    if gap is not None:
        sql = gap.sql
    rewritten = rewrite_session_functions(rewrite_functions(sql), tenant, database)
    result = _run_datafusion(engine, tenant, database, rewritten)
    if gap is None:
        return result
    bounds_sql = f"SELECT CAST({gap.lower} AS TIMESTAMP) AS lo, CAST({gap.upper} AS TIMESTAMP) AS hi FROM b"
    bounds = _run_on_table("b", pa.table({"x": [1]}), bounds_sql)
    lower_ns, upper_ns = (bounds.column(c).cast(pa.timestamp("ns")).cast(pa.int64())[0].as_py() for c in ("lo", "hi"))
    return _table_result(gapfill.fill(result.to_table(), gap, lower_ns, upper_ns))


_COMPARISON = {"=", "!=", "<>", "<", ">", "<=", ">="}
_ARITHMETIC = {"+", "-", "*", "/", "%", "|", "^", "&"}


def quote_numbers_compared_to(sql: str, columns: set[str]) -> str:
    """`tag = 11` → `tag = '11'`: DataFusion 27 (CnosDB's) compares a string column with a number as strings;
    DataFusion 55 would cast the column to a number and fail on the first non-numeric value."""
    tokens = tokenize(sql)
    edits: list[tuple[int, int, str]] = []
    for i, token in enumerate(tokens):
        if token.kind != "op" or token.text not in _COMPARISON:
            continue
        left, right = tokens[i - 1] if i else None, tokens[i + 1 : i + 3]
        if left is not None and left.kind in ("word", "quoted") and left.value in columns and right:
            negative = right[0].text == "-" and len(right) > 1
            number = right[1] if negative else right[0]
            after = tokens.index(number) + 1
            if number.kind == "number" and (after >= len(tokens) or tokens[after].text not in _ARITHMETIC):
                edits.append((right[0].start, number.end, "'" + ("-" if negative else "") + number.text + "'"))
        column = tokens[i + 1] if i + 1 < len(tokens) else None
        if column is not None and column.kind in ("word", "quoted") and column.value in columns and left is not None:
            minus = tokens[i - 2] if i >= 2 and tokens[i - 2].text == "-" else None
            before = tokens[i - 2].text if i >= 2 else ""
            if left.kind == "number" and (minus is None or _unary(tokens, i - 2)) and before not in _ARITHMETIC - {"-"}:
                begin = minus.start if minus else left.start
                edits.append((begin, left.end, "'" + ("-" if minus else "") + left.text + "'"))
    for begin, end, text in sorted(edits, reverse=True):
        sql = sql[:begin] + text + sql[end:]
    return sql


_BEFORE_UNARY = {"(", ",", "AND", "OR", "WHERE", "ON", "NOT", "WHEN", "THEN", "ELSE", "SELECT", "HAVING"}


def _unary(tokens: list[Token], minus: int) -> bool:
    """Whether the `-` at `minus` is a sign rather than a subtraction."""
    return minus == 0 or tokens[minus - 1].upper in _BEFORE_UNARY or tokens[minus - 1].text in _COMPARISON


def _referenced_tables(engine: Engine, tenant: str, database: str, sql: str) -> set[tuple[str | None, str]]:
    """Tables `sql` may read: (None, table) of the current database, and (db, table) for `db.table` naming
    another database of the tenant."""
    tokens = tokenize(sql)
    names = {t.value for t in tokens if t.kind in ("word", "quoted")}
    with engine._lock:
        databases = engine.catalog.tenants.get(tenant, {})
        if database not in databases:
            raise errors.database_not_found(database)
        wanted: set[tuple[str | None, str]] = {(None, n) for n in set(databases[database].tables) & names}
        for first, dot, second in zip(tokens, tokens[1:], tokens[2:], strict=False):
            if dot.text != "." or first.kind not in ("word", "quoted") or second.kind not in ("word", "quoted"):
                continue
            other = databases.get(first.value)
            if other is not None and first.value != database and second.value in other.tables:
                wanted.add((first.value, second.value))
    return wanted


def _run_datafusion(engine: Engine, tenant: str, database: str, sql: str) -> QueryResult:
    from tidepool.db.engine import QueryResult

    wanted = _referenced_tables(engine, tenant, database, sql)
    ctx = _context(database)
    snapshots = []
    try:
        for other_db in sorted({s for s, _ in wanted if s is not None}):
            ctx.sql(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(other_db)}").collect()
        for in_db, name in sorted(wanted, key=lambda w: (w[0] or "", w[1])):
            snapshot = engine.snapshot(tenant, in_db or database, name)
            snapshots.append(snapshot)
            engine.register(ctx, name, snapshot, in_db)
        strings = {f.name for s in snapshots for f in s.schema if pa.types.is_string(f.type)}
        sql = quote_numbers_compared_to(sql, strings)
        frame = ctx.sql(sql)
        schema = cnosdb_names(frame.schema())
        stream = frame.execute_stream()
    except BaseException as exc:
        for snapshot in snapshots:
            engine.release(snapshot)
        if isinstance(exc, (DbError, *_PASS_THROUGH)):
            raise
        raise _map_error(exc, tenant, database) from None

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for batch in stream:
                yield pa.RecordBatch.from_arrays(batch.to_pyarrow().columns, schema=schema)
        except _PASS_THROUGH:
            raise
        except BaseException as exc:
            raise _map_error(exc, tenant, database) from None
        finally:
            for snapshot in snapshots:
                engine.release(snapshot)

    return QueryResult(schema, batches())


# DataFusion 27, which CnosDB runs, prints aggregate functions in upper case in generated column names
# (`AVG(air.temperature)`) and `count(*)` as `COUNT(UInt8(1))` (CnosDB's docs: `SELECT COUNT(*) FROM air` →
# `COUNT(UInt8(1))`); DataFusion 55 prints `count(*)` and lower case.
_UPPER_AGGREGATES = re.compile(
    r"\b(count|sum|avg|min|max|stddev|stddev_pop|var|var_pop|median|approx_distinct|approx_median|"
    r"approx_percentile_cont|array_agg|corr|covar_samp|covar_pop)\("
)


def cnosdb_names(schema: pa.Schema) -> pa.Schema:
    """Rename generated aggregate columns as CnosDB names them; aliases without a call are left alone."""
    fields = [
        f.with_name(
            _UPPER_AGGREGATES.sub(lambda m: m.group(1).upper() + "(", f.name).replace("COUNT(*)", "COUNT(UInt8(1))")
        )
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


_TABLE_NOT_FOUND = re.compile(r"table '(?:datafusion\.)?(?:([^'.]+)\.)?([^'.]+)' not found")
_PARSER_ERROR = re.compile(r'ParserError\("(.*)"\)', re.DOTALL)


def _map_error(exc: BaseException, tenant: str, database: str) -> DbError:
    """DataFusion's exception → CnosDB's error code and message."""
    text = str(exc)
    match = _TABLE_NOT_FOUND.search(text)
    if match and tenant:
        schema, table = match.groups()
        return errors.table_not_found_in_plan(tenant, schema or database, table)
    match = _PARSER_ERROR.search(text)
    if match:
        return errors.sql_parser(match.group(1).replace("Expected: ", "Expected "))
    return errors.datafusion(text.removeprefix("DataFusion error: "))
