"""The database's errors, as CnosDB reports them: a six-digit `error_code`, an `error_message`, an HTTP status.

CnosDB builds a code from a two-digit module (01 query, 02 tskv, 03 meta, 04 http, 05 coordinator) and a
four-digit variant; the codes and message texts below follow cnosdb/cnosdb (query_server/spi/src/lib.rs,
meta/src/error.rs, tskv/src/error.rs). The HTTP layer renders a DbError once, as
`{"error_code": code, "error_message": message}` with `http_status`.
"""

from __future__ import annotations

UNPROCESSABLE = 422
INTERNAL = 500

# Type names CnosDB prints in "Column 'f' type error, found I64 expected F64".
TYPE_NAMES = {"DOUBLE": "F64", "BIGINT": "I64", "BIGINT UNSIGNED": "U64", "STRING": "STRING", "BOOLEAN": "BOOL"}


class DbError(Exception):
    """A failure with CnosDB's code and message; nothing of the failed request was applied."""

    def __init__(self, code: str, message: str, http_status: int = UNPROCESSABLE) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"DbError({self.code!r}, {self.message!r}, {self.http_status})"

    def to_json(self) -> dict[str, str]:
        return {"error_code": self.code, "error_message": self.message}


def _quoted(name: str) -> str:
    """Rust's `{:?}` of a string: double quotes, with `"` and `\\` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- meta (03) ---------------------------------------------------------------------------------------------


def tenant_not_found(tenant: str) -> DbError:
    return DbError("030010", f"The tenant {tenant} not found")


def database_not_found(database: str) -> DbError:
    return DbError("030017", f"Database not found: {_quoted(database)}")


def database_already_exists(database: str) -> DbError:
    return DbError("030018", f"Database {_quoted(database)} already exists")


def table_not_found(tenant: str, database: str, table: str) -> DbError:
    return DbError("030019", f"Table not found: {_quoted(f'{tenant}.{database}.{table}')}")


def table_not_found_in_plan(tenant: str, database: str, table: str) -> DbError:
    """A statement that reads or writes rows names an unknown table (CnosDB's planner answers this, not meta)."""
    return datafusion(f"Error during planning: Table not found, tenant: {tenant} db: {database}, table: {table}")


def table_already_exists(table: str) -> DbError:
    return DbError("030020", f"Table {table} already exists.")


def not_supported(message: str) -> DbError:
    """E.g. `not_supported("create expired bucket")` for a write older than the database's TTL."""
    return DbError("030034", f"Operation not support: {message}")


# --- tskv (02) ---------------------------------------------------------------------------------------------


def fields_empty() -> DbError:
    return DbError("020002", "Coordinator: Fields can't be empty")


def type_conflict(column: str, found: str, expected: str) -> DbError:
    """A write whose column type differs from the table's; `found`/`expected` are CnosDB's short type names
    (I64, U64, F64, STRING, BOOL, TAG)."""
    return DbError("020004", f"Column '{column}' type error, found {found} expected {expected}")


# --- http (04) ---------------------------------------------------------------------------------------------


def line_protocol(detail: str) -> DbError:
    return DbError("040004", f"Error parsing message: {detail}")


def invalid_utf8(detail: str) -> DbError:
    return DbError("040015", f"Invalid utf8 string: {detail}")


# --- query (01) --------------------------------------------------------------------------------------------


def datafusion(detail: str) -> DbError:
    """An error raised by the SQL engine while planning or running a query."""
    return DbError("010001", f"Datafusion: {detail}")


def build_logical_plan(detail: str) -> DbError:
    return DbError("010001", f"Build logical plan: {detail}")


def semantic(detail: str) -> DbError:
    return DbError("010003", f"Semantic error: {detail}")


def not_implemented(detail: str) -> DbError:
    return DbError("010005", f"This feature is not implemented: {detail}")


def sql_parser(detail: str) -> DbError:
    """Bad SQL text, e.g. `sql_parser("Expected an SQL statement, found: 1")`."""
    return DbError("010009", f"sql parser error: {detail}")


def multi_statement(num: int, sql: str) -> DbError:
    return DbError("010013", f"Multi-statement not allow, found num:{num}, sql:{sql}")


def invalid_param(reason: str) -> DbError:
    return DbError("010024", f"Invalid parameter : {reason}")


def column_already_exists(table: str, column: str) -> DbError:
    return DbError("010028", f"Semantic error: column {column} already exists in table {table}")


def column_not_exists(table: str, column: str) -> DbError:
    return DbError("010029", f"Semantic error: Column {column} not exists in table {table}")


def drop_time_column() -> DbError:
    return DbError("010031", "Semantic error: Can't drop column time.")


def at_least_one_field() -> DbError:
    return DbError("010032", "Semantic error: There must be at least one field column.")


def insert_missing_column(column: str, fields: str) -> DbError:
    return DbError(
        "010044", f"Semantic error: Insert column '{column}' does not exist in target table, expect {fields}"
    )


def insert_columns_mismatch() -> DbError:
    return DbError("010045", "Semantic error: Insert columns and Source columns not match")


def show_series_where_field(column: str) -> DbError:
    return DbError("010046", f"Semantic error: SHOW SERIES does not support where clause contains field {column}")


def invalid_time_window(reason: str) -> DbError:
    return DbError("010058", f"Invalid TimeWindow parameter : {reason}")


def forbid_drop_database(database: str) -> DbError:
    return DbError("010065", f'Database "{database}" forbid drop')


def delete_on_field() -> DbError:
    return not_implemented("Filtering on the field column on the tskv table in delete statement")


def internal(reason: str) -> DbError:
    """A bug or an I/O failure; CnosDB answers these with 500."""
    return DbError(
        "019998",
        f"Internal error: {reason}. This was likely caused by a bug in Cnosdb's code and we would welcome that "
        "you file an bug report in our issue tracker",
        INTERNAL,
    )
