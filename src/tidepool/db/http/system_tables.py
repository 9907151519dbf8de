"""CnosDB's system tables about users and roles, answered from the auth store with DataFusion.

`cluster_schema.users` (user_name, is_admin, user_options), `information_schema.members` (user_name, role_name),
`information_schema.roles` (role_name, role_type, inherit_role) and `information_schema.database_privileges`
(tenant_name, database_name, privilege_type, role_name), with CnosDB's visibility: admins see every user (others
themselves), tenant owners every member, role and privilege (others their own). A statement naming one of these
tables runs here, over in-memory Arrow tables, instead of in the engine, which knows nothing of users.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pyarrow as pa

from tidepool.db.auth import SYSTEM_ROLES, AuthStore, Principal, UserInfo
from tidepool.db.errors import datafusion

_MENTION = re.compile(
    r"\b(?:cluster_schema\s*\.\s*users|information_schema\s*\.\s*(?:members|roles|database_privileges))\b", re.I
)
_PRIVILEGE_NAMES = {"Read": "Read", "Write": "Write", "Full": "All"}


@dataclass
class SystemResult:
    schema: pa.Schema
    batches: list[pa.RecordBatch]


def _local_name(qualified: str) -> str:
    schema, _, table = (part.strip().lower() for part in qualified.partition("."))
    return f"tidepool_{schema}_{table}"


def mentions_system_table(sql: str) -> bool:
    return _MENTION.search(sql) is not None


def _tables(auth: AuthStore, principal: Principal) -> dict[str, pa.Table]:
    is_owner = auth.is_tenant_owner(principal)
    with auth.lock:
        users = [u for u in auth.users.values() if principal.user.is_admin or u.name == principal.user.name]
        members = auth.members.get(principal.tenant, {})
        roles = auth.roles.get(principal.tenant, {})
        own_role = members.get(principal.user.name)

        def options(user: UserInfo) -> str:
            opts: dict[str, object] = {"hash_password": "*****"}
            if user.must_change_password:
                opts["must_change_password"] = True
            if user.comment is not None:
                opts["comment"] = user.comment
            if user.granted_admin:
                opts["granted_admin"] = True
            return json.dumps(opts, separators=(",", ":"))

        member_rows = [(u, r) for u, r in sorted(members.items()) if is_owner or u == principal.user.name]
        role_rows: list[tuple[str, str, str | None]] = []
        if is_owner:
            role_rows = [(name, "system", None) for name in SYSTEM_ROLES]
            role_rows += [(name, "custom", role.inherit) for name, role in sorted(roles.items())]
        privilege_rows = [
            (principal.tenant, database, _PRIVILEGE_NAMES[level], name)
            for name, role in sorted(roles.items())
            if is_owner or name == own_role
            for database, level in sorted(role.privileges.items())
        ]
    return {
        "cluster_schema.users": pa.table(
            {
                "user_name": pa.array([u.name for u in users], pa.string()),
                "is_admin": pa.array([u.is_admin for u in users], pa.bool_()),
                "user_options": pa.array([options(u) for u in users], pa.string()),
            }
        ),
        "information_schema.members": pa.table(
            {
                "user_name": pa.array([u for u, _ in member_rows], pa.string()),
                "role_name": pa.array([r for _, r in member_rows], pa.string()),
            }
        ),
        "information_schema.roles": pa.table(
            {
                "role_name": pa.array([r[0] for r in role_rows], pa.string()),
                "role_type": pa.array([r[1] for r in role_rows], pa.string()),
                "inherit_role": pa.array([r[2] for r in role_rows], pa.string()),
            }
        ),
        "information_schema.database_privileges": pa.table(
            {
                "tenant_name": pa.array([r[0] for r in privilege_rows], pa.string()),
                "database_name": pa.array([r[1] for r in privilege_rows], pa.string()),
                "privilege_type": pa.array([r[2] for r in privilege_rows], pa.string()),
                "role_name": pa.array([r[3] for r in privilege_rows], pa.string()),
            }
        ),
    }


def query(auth: AuthStore, principal: Principal, sql: str) -> SystemResult:
    """Run `sql` over the system tables the principal may see."""
    import datafusion as df

    ctx = df.SessionContext()
    # DataFusion owns the name information_schema, so the tables are registered under local names and the
    # statement is rewritten to use them.
    for name, table in _tables(auth, principal).items():
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], table.schema)]
        ctx.register_record_batches(_local_name(name), [batches])
    rewritten = _MENTION.sub(lambda m: _local_name(m.group(0)), sql.strip().rstrip(";"))
    try:
        frame = ctx.sql(rewritten)
        batches = frame.collect()
        schema = frame.schema()
    except Exception as exc:  # DataFusion raises plain Exceptions with its message
        raise datafusion(str(exc)) from None
    return SystemResult(pa.schema(schema), batches)
