"""Users, roles and privileges of the HTTP layer (tidepool.db.auth), following CnosDB's dcl test cases."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tidepool.db.auth import AuthStore, Principal
from tidepool.db.errors import DbError


def header(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run(store: AuthStore, who: Principal, *statements: str) -> None:
    for sql in statements:
        assert store.handle_statement(who, sql), sql


def error_of(fn: object, *args: object) -> tuple[str, str]:
    with pytest.raises(DbError) as failure:
        fn(*args)  # type: ignore[operator]
    return failure.value.code, failure.value.message


def test_read_role_can_query_but_not_write_or_change_tables(tmp_path: Path) -> None:
    store = AuthStore(tmp_path)
    root = store.authenticate(header("root"), "cnosdb")
    run(
        store,
        root,
        "create user reader",
        "create role r5",
        "grant read on database db1 to r5",
        "alter tenant cnosdb add user reader as r5",
    )
    reader = store.authenticate(header("reader"), "cnosdb")
    store.check_sql(reader, "db1", "SELECT * FROM t")
    store.check_sql(reader, "db1", "show tables")
    store.check_sql(reader, "public", "describe database db1")
    tenant = "tenant 78322384368497284380257291774744000001"
    assert error_of(store.check_sql, reader, "db2", "show tables") == (
        "010004",
        f"Insufficient privileges, expected [Read on database db2 of {tenant}]",
    )
    assert error_of(store.check_sql, reader, "db1", "INSERT INTO t VALUES (1)")[1].endswith(
        f"[Write on database db1 of {tenant}]"
    )
    assert error_of(store.check_sql, reader, "db1", "CREATE TABLE t2 (a DOUBLE)")[1].endswith(
        f"[Full on database db1 of {tenant}]"
    )
    assert error_of(store.check_sql, reader, "db1", "show databases")[1].endswith(
        f"[Read on all databases of {tenant}]"
    )
    assert error_of(store.check_write, reader, "db1")[0] == "010004"
    assert error_of(store.handle_statement, reader, "create role r9")[1] == (
        f"Insufficient privileges, expected [maintainer for all roles of {tenant}]"
    )
    run(store, root, "revoke read on database db1 from r5")
    assert error_of(store.check_sql, reader, "db1", "select 1")[0] == "010004"

    reloaded = AuthStore(tmp_path)  # everything above survives a restart
    assert reloaded.roles["cnosdb"]["r5"].privileges == {}
    assert reloaded.members["cnosdb"]["reader"] == "r5"


def test_names_roles_and_members_are_validated_like_cnosdb() -> None:
    store = AuthStore()
    root = store.authenticate(header("root"), "cnosdb")
    assert error_of(store.handle_statement, root, "create user ''") == (
        "010009",
        "sql parser error: Name cannot be empty or contain only spaces",
    )
    assert error_of(store.handle_statement, root, 'create user "u/1"') == (
        "010009",
        "sql parser error: not supported keyword contains '/': u/1",
    )
    run(store, root, "create role r1 inherit owner")
    assert error_of(store.handle_statement, root, "create role r3 inherit r1") == (
        "010003",
        "Semantic error: Expected [owner,member], found r1",
    )
    assert error_of(store.handle_statement, root, "alter tenant cnosdb add user nobody as r1") == (
        "030008",
        "The user nobody not found",
    )
    run(store, root, "create user u1", "drop user if exists ghost")
    assert error_of(store.handle_statement, root, "grant read on database d to role r7") == (
        "030006",
        "The role r7 not found",
    )
    assert error_of(store.authenticate, header("u1"), "cnosdb") == (
        "010016",
        "Auth error: The member u1 of tenant cnosdb not found",
    )
    run(store, root, "alter tenant cnosdb add user u1 as r1")  # a role inheriting owner may do everything
    store.check_sql(store.authenticate(header("u1"), "cnosdb"), "public", "drop database public")
    assert not store.handle_statement(root, "select 1")


def test_must_change_password_blocks_all_but_a_new_password() -> None:
    store = AuthStore(auth_enabled=True)
    root = store.authenticate(header("root"), "cnosdb")
    run(
        store,
        root,
        "create user test_must with must_change_password = true, password = '123'",
        "alter tenant cnosdb add user test_must as owner",
    )
    assert error_of(store.authenticate, header("test_must", "bad"), "cnosdb")[0] == "010016"
    user = store.authenticate(header("test_must", "123"), "cnosdb")
    assert error_of(store.check_sql, user, "public", "show tables") == (
        "010004",
        "Insufficient privileges, expected [change password]",
    )
    assert error_of(store.check_write, user, "public")[1].endswith("[change password]")
    assert error_of(store.handle_statement, user, "alter user test_must set password='123'")[1].endswith(
        "[input different password]"
    )
    run(store, user, "alter user test_must set password='456'")
    user = store.authenticate(header("test_must", "456"), "cnosdb")
    store.check_sql(user, "public", "show tables")


def test_malformed_basic_auth_is_a_bad_request() -> None:
    store = AuthStore()
    for value in ("Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        failure = error_of(store.authenticate, value, "cnosdb")
        assert failure == ("040006", f"Parse auth, malformed basic auth encoding: {value}")
