"""Users, roles and privileges, as CnosDB has them, and the SQL statements that manage them.

CnosDB keeps users cluster-wide; a user works in a tenant as a member with a role: the system roles `owner`
(everything in the tenant) and `member` (nothing by itself), or a custom role that inherits one of them and holds
`READ`/`WRITE`/`ALL` privileges on named databases. `root` exists from the start, is an admin and has an empty
password. With `auth_enabled` off (CnosDB's default) passwords are not checked, but the user must exist and
privileges still apply, as in CnosDB.

The state is one JSON file under the data directory (`auth.json`), rewritten atomically on every change. Passwords
are stored as salted PBKDF2-SHA256 hashes (CnosDB uses bcrypt; the file format is tidepool's own).
The HTTP layer calls `authenticate` for every request, `handle_statement` before handing SQL to the engine (it
answers the user-management statements itself) and `check_sql`/`check_write` for privileges.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidepool.db.catalog import write_atomically
from tidepool.db.errors import DbError

BAD_REQUEST = 400
ROOT = "root"
DEFAULT_TENANT = "cnosdb"
SYSTEM_ROLES = ("owner", "member")
# CnosDB's object id of the default tenant, which its privilege messages print ("... of tenant 7832...").
TENANT_OIDS = {DEFAULT_TENANT: "78322384368497284380257291774744000001"}
PBKDF2_ROUNDS = 20_000

READ, WRITE, ALL = "Read", "Write", "Full"
_LEVEL = {READ: 1, WRITE: 2, ALL: 3}
_GRANT_NAMES = {"READ": READ, "WRITE": WRITE, "ALL": ALL}


# --- errors --------------------------------------------------------------------------------------------------


def missing_authorization() -> DbError:
    return DbError("000000", 'Missing request header "authorization"', BAD_REQUEST)


def malformed_auth(value: str) -> DbError:
    return DbError("040006", f"Parse auth, malformed basic auth encoding: {value}", BAD_REQUEST)


def access_denied(user: str) -> DbError:
    return DbError("010016", f"Auth error: Access denied for user '{user}' (using xxx) username or password invalid")


def insufficient(privilege: str) -> DbError:
    return DbError("010004", f"Insufficient privileges, expected [{privilege}]")


def _tenant_ref(tenant: str) -> str:
    return TENANT_OIDS.get(tenant, tenant)


def _parser_error(detail: str) -> DbError:
    return DbError("010009", f"sql parser error: {detail}")


# --- model ---------------------------------------------------------------------------------------------------


@dataclass
class UserInfo:
    """A user's stored record; `options` mirrors CnosDB's `user_options` (password hash, flags, comment)."""

    name: str
    password_hash: str = ""
    must_change_password: bool = False
    granted_admin: bool = False
    comment: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.name == ROOT or self.granted_admin


@dataclass
class Role:
    inherit: str  # "owner" or "member"
    privileges: dict[str, str] = field(default_factory=dict)  # database → Read | Write | Full


@dataclass
class Principal:
    """Who a request runs as: the user and their role in the request's tenant (None for admins not in it)."""

    user: UserInfo
    tenant: str
    role: str | None


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ROUNDS)
    return f"pbkdf2-sha256${PBKDF2_ROUNDS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    if not stored:
        return password == ""
    _scheme, rounds, salt_hex, digest_hex = stored.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt_hex), int(rounds))
    return hmac.compare_digest(digest.hex(), digest_hex)


def parse_basic_auth(header: str | None) -> tuple[str, str]:
    """(user, password) from an `Authorization: Basic ...` value, with CnosDB's 400 errors."""
    if header is None:
        raise missing_authorization()
    if not header.startswith("Basic "):
        raise malformed_auth(header)
    try:
        decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise malformed_auth(header) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise malformed_auth(header)
    return user, password


# --- statements ----------------------------------------------------------------------------------------------

_NAME = r"""(?:"(?:[^"]|"")*"|'(?:[^']|'')*'|[^\s;,'"]+)"""
_STATEMENTS = {
    "create_user": re.compile(
        rf"^CREATE\s+USER\s+(?P<ifne>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})(?:\s+WITH\s+(?P<options>.*))?$",
        re.I | re.S,
    ),
    "alter_user": re.compile(
        rf"^ALTER\s+USER\s+(?P<name>{_NAME})\s+(?P<action>SET|RENAME\s+TO)\s+(?P<rest>.*)$", re.I | re.S
    ),
    "drop_user": re.compile(rf"^DROP\s+USER\s+(?P<ife>IF\s+EXISTS\s+)?(?P<name>{_NAME})$", re.I | re.S),
    "create_role": re.compile(
        rf"^CREATE\s+ROLE\s+(?P<ifne>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})(?:\s+INHERIT\s+(?P<inherit>{_NAME}))?$",
        re.I | re.S,
    ),
    "drop_role": re.compile(rf"^DROP\s+ROLE\s+(?P<ife>IF\s+EXISTS\s+)?(?P<name>{_NAME})$", re.I | re.S),
    "grant": re.compile(
        rf"^GRANT\s+(?P<priv>READ|WRITE|ALL)\s+ON\s+DATABASE\s+(?P<db>{_NAME})\s+TO\s+(?:ROLE\s+)?(?P<role>{_NAME})$",
        re.I | re.S,
    ),
    "revoke": re.compile(
        rf"^REVOKE\s+(?P<priv>READ|WRITE|ALL)\s+ON\s+DATABASE\s+(?P<db>{_NAME})\s+FROM\s+(?:ROLE\s+)?"
        rf"(?P<role>{_NAME})$",
        re.I | re.S,
    ),
    "tenant_add": re.compile(
        rf"^ALTER\s+TENANT\s+(?P<tenant>{_NAME})\s+ADD\s+USER\s+(?P<user>{_NAME})\s+AS\s+(?P<role>{_NAME})$",
        re.I | re.S,
    ),
    "tenant_remove": re.compile(
        rf"^ALTER\s+TENANT\s+(?P<tenant>{_NAME})\s+REMOVE\s+USER\s+(?P<user>{_NAME})$", re.I | re.S
    ),
}
_OPTION = re.compile(rf"\s*(?P<key>\w+)\s*=\s*(?P<value>{_NAME})\s*(?:,|$)", re.S)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1].replace(token[0] * 2, token[0])
    return token


def _ident(token: str) -> str:
    """A user/role name as CnosDB stores it: unquoted names are lower-cased; checked like CnosDB's parser."""
    name = _unquote(token) if token[0] in "'\"" else token.lower()
    if not name.strip():
        raise _parser_error("Name cannot be empty or contain only spaces")
    if "/" in name:
        raise _parser_error(f"not supported keyword contains '/': {name}")
    return name


def _options(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    options: dict[str, str] = {}
    rest = text.strip()
    while rest:
        match = _OPTION.match(rest)
        if match is None:
            found = rest.split("=", 1)[-1].strip() or rest
            raise _parser_error(f"Expected a value, found: {found.split()[0] if found.split() else found}")
        options[match["key"].lower()] = _unquote(match["value"])
        rest = rest[match.end() :].strip()
    return options


def _bool_option(value: str) -> bool:
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _parser_error(f"Expected a boolean, found: {value}")


def strip_statement(sql: str) -> str:
    """The statement without comments, surrounding space and one trailing `;`."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    text = "\n".join(lines).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


class AuthStore:
    """Users, tenant memberships and roles; thread-safe, persisted to `<data_dir>/auth.json` when given."""

    def __init__(self, data_dir: Path | None = None, *, auth_enabled: bool = False) -> None:
        self.auth_enabled = auth_enabled
        self._path = data_dir / "auth.json" if data_dir is not None else None
        self._lock = threading.RLock()
        self.users: dict[str, UserInfo] = {ROOT: UserInfo(ROOT)}
        self.members: dict[str, dict[str, str]] = {DEFAULT_TENANT: {ROOT: "owner"}}  # tenant → user → role
        self.roles: dict[str, dict[str, Role]] = {DEFAULT_TENANT: {}}  # tenant → name → role
        # (user, sha256 of the password) → the stored hash it was verified against; PBKDF2 is too slow per request
        self._verified: dict[tuple[str, bytes], str] = {}
        if self._path is not None and self._path.exists():
            self._load(json.loads(self._path.read_text()))

    # persistence ---------------------------------------------------------------------------------------------

    def _load(self, state: dict[str, Any]) -> None:
        self.users = {name: UserInfo(name=name, **info) for name, info in state["users"].items()}
        self.members = state["members"]
        self.roles = {
            tenant: {name: Role(**role) for name, role in roles.items()} for tenant, roles in state["roles"].items()
        }

    def _save(self) -> None:
        if self._path is None:
            return
        state = {
            "users": {
                name: {
                    "password_hash": u.password_hash,
                    "must_change_password": u.must_change_password,
                    "granted_admin": u.granted_admin,
                    "comment": u.comment,
                }
                for name, u in self.users.items()
            },
            "members": self.members,
            "roles": {
                tenant: {name: {"inherit": r.inherit, "privileges": r.privileges} for name, r in roles.items()}
                for tenant, roles in self.roles.items()
            },
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self._path, json.dumps(state, indent=1, sort_keys=True).encode())

    # authentication ------------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, tenant: str) -> Principal:
        """The principal of a request, or CnosDB's 400/422 error."""
        user_name, password = parse_basic_auth(authorization)
        with self._lock:
            user = self.users.get(user_name)
            if self.auth_enabled:
                if user is None or not self._password_ok(user, password):
                    raise access_denied(user_name)
            elif user is None:
                raise DbError("010016", f"Auth error: The user {user_name} not found")
            role = self.members.get(tenant, {}).get(user_name)
            if role is None and not user.is_admin:
                raise DbError("010016", f"Auth error: The member {user_name} of tenant {tenant} not found")
            return Principal(user=user, tenant=tenant, role=role)

    def _password_ok(self, user: UserInfo, password: str) -> bool:
        key = (user.name, hashlib.sha256(password.encode()).digest())
        if self._verified.get(key) == user.password_hash:
            return True
        if not verify_password(password, user.password_hash):
            return False
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[key] = user.password_hash
        return True

    # privileges ----------------------------------------------------------------------------------------------

    def _level(self, principal: Principal, database: str | None) -> int:
        """The privilege level the principal has on `database` (None: on all databases)."""
        if principal.user.is_admin:
            return _LEVEL[ALL]
        role_name = principal.role
        if role_name == "owner":
            return _LEVEL[ALL]
        if role_name is None or role_name == "member":
            return 0
        role = self.roles.get(principal.tenant, {}).get(role_name)
        if role is None:
            return 0
        if role.inherit == "owner":
            return _LEVEL[ALL]
        if database is None:
            return 0
        return _LEVEL.get(role.privileges.get(database, ""), 0)

    def is_tenant_owner(self, principal: Principal) -> bool:
        """Admins, owners and roles inheriting owner: those who may see and manage the tenant's roles."""
        with self._lock:
            return self._level(principal, None) >= _LEVEL[ALL]

    @property
    def lock(self) -> threading.RLock:
        """Held while reading users, members and roles consistently from outside this class."""
        return self._lock

    def require(self, principal: Principal, level: str, database: str | None) -> None:
        with self._lock:
            if self._level(principal, database) >= _LEVEL[level]:
                return
        target = f"on database {database}" if database is not None else "on all databases"
        raise insufficient(f"{level} {target} of tenant {_tenant_ref(principal.tenant)}")

    def require_password_changed(self, principal: Principal) -> None:
        if self.auth_enabled and principal.user.must_change_password:
            raise insufficient("change password")

    def check_write(self, principal: Principal, database: str) -> None:
        """Line-protocol writes need WRITE on the database."""
        self.require_password_changed(principal)
        self.require(principal, WRITE, database)

    def check_sql(self, principal: Principal, database: str, sql: str) -> None:
        """Privileges for a statement the engine runs, judged from its leading keywords (see docs/http-api.md)."""
        self.require_password_changed(principal)
        words = strip_statement(sql).split()
        upper = [w.upper() for w in words[:4]]
        if not upper:
            return
        first = upper[0]
        if first == "SHOW" and len(upper) > 1 and upper[1] == "DATABASES":
            self.require(principal, READ, None)
        elif first in ("CREATE", "DROP", "ALTER") and len(upper) > 1 and upper[1] == "DATABASE":
            if first == "CREATE":
                self.require(principal, WRITE, None)
            else:
                rest = [w for w in words[2:] if w.upper() not in ("IF", "EXISTS")]
                self.require(principal, ALL, _unquote(rest[0]) if rest else database)
        elif first in ("CREATE", "DROP", "ALTER", "RECOVER"):
            self.require(principal, ALL, database)
        elif first in ("INSERT", "DELETE", "UPDATE", "COPY"):
            self.require(principal, WRITE, database)
        elif first == "DESCRIBE" and len(upper) > 2 and upper[1] == "DATABASE":
            self.require(principal, READ, _unquote(words[2]))
        elif first == "SHOW" and "ON" in upper:
            on = upper.index("ON")
            self.require(principal, READ, _unquote(words[on + 1]) if len(words) > on + 1 else database)
        else:
            self.require(principal, READ, database)

    # user-management statements ------------------------------------------------------------------------------

    def handle_statement(self, principal: Principal, sql: str) -> bool:
        """Run `sql` if it is a user/role/membership statement (True), else leave it to the engine (False).

        Applies the change and persists it before returning; raises DbError as CnosDB would.
        """
        text = strip_statement(sql)
        for kind, pattern in _STATEMENTS.items():
            match = pattern.match(text)
            if match is not None:
                if kind != "alter_user":
                    self.require_password_changed(principal)
                with self._lock:
                    getattr(self, "_" + kind)(principal, match)
                    self._save()
                return True
        return False

    def _require_admin(self, principal: Principal) -> None:
        if not principal.user.is_admin:
            raise insufficient("maintainer for system")

    def _require_role_maintainer(self, principal: Principal, tenant: str) -> None:
        view = Principal(principal.user, tenant, self.members.get(tenant, {}).get(principal.user.name))
        if self._level(view, None) < _LEVEL[ALL]:
            raise insufficient(f"maintainer for all roles of tenant {_tenant_ref(tenant)}")

    def _create_user(self, principal: Principal, match: re.Match[str]) -> None:
        self._require_admin(principal)
        name = _ident(match["name"])
        options = _options(match["options"])
        if name in self.users:
            if match["ifne"]:
                return
            raise DbError("030007", f"The user {name} already exists")
        user = UserInfo(name)
        self._apply_user_options(user, options)
        self.users[name] = user

    def _apply_user_options(self, user: UserInfo, options: dict[str, str]) -> None:
        for key, value in options.items():
            if key == "password":
                user.password_hash = hash_password(value) if value else ""
            elif key == "must_change_password":
                user.must_change_password = _bool_option(value)
            elif key == "granted_admin":
                user.granted_admin = _bool_option(value)
            elif key == "comment":
                user.comment = value
            else:
                raise _parser_error(f"Expected PASSWORD, MUST_CHANGE_PASSWORD, COMMENT or GRANTED_ADMIN, found: {key}")

    def _alter_user(self, principal: Principal, match: re.Match[str]) -> None:
        name = _ident(match["name"])
        user = self.users.get(name)
        if match["action"].upper().startswith("RENAME"):
            self._require_admin(principal)
            if user is None:
                raise DbError("030008", f"The user {name} not found")
            new_name = _ident(match["rest"].strip())
            if name == ROOT:
                raise DbError("010074", f"User '{name}' is prohibited from being renamed")
            self.users[new_name] = user
            user.name = new_name
            del self.users[name]
            for members in self.members.values():
                if name in members:
                    members[new_name] = members.pop(name)
            return
        options = _options(match["rest"])
        self_password_only = name == principal.user.name and set(options) == {"password"}
        if not self_password_only:
            self.require_password_changed(principal)
            self._require_admin(principal)
        if user is None:
            raise DbError("030008", f"The user {name} not found")
        if self_password_only and self.auth_enabled and verify_password(options["password"], user.password_hash):
            raise insufficient("input different password")
        if "granted_admin" in options and name == ROOT:
            raise DbError("010074", f"User '{name}' is prohibited from being altered")
        self._apply_user_options(user, options)
        if self_password_only:
            user.must_change_password = False

    def _drop_user(self, principal: Principal, match: re.Match[str]) -> None:
        self._require_admin(principal)
        name = _ident(match["name"])
        if name == ROOT:
            raise DbError("010074", f"User '{name}' is prohibited from being dropped")
        if name not in self.users:
            if match["ife"]:
                return
            raise DbError("030008", f"The user {name} not found")
        del self.users[name]
        for members in self.members.values():
            members.pop(name, None)

    def _create_role(self, principal: Principal, match: re.Match[str]) -> None:
        tenant = principal.tenant
        self._require_role_maintainer(principal, tenant)
        name = _ident(match["name"])
        inherit = _ident(match["inherit"]) if match["inherit"] else "member"
        if inherit not in SYSTEM_ROLES:
            raise DbError("010003", f"Semantic error: Expected [owner,member], found {inherit}")
        roles = self.roles.setdefault(tenant, {})
        if name in roles or name in SYSTEM_ROLES:
            if match["ifne"]:
                return
            raise DbError("030005", f"The role {name} already exists")
        roles[name] = Role(inherit=inherit)

    def _drop_role(self, principal: Principal, match: re.Match[str]) -> None:
        tenant = principal.tenant
        self._require_role_maintainer(principal, tenant)
        name = _ident(match["name"])
        roles = self.roles.setdefault(tenant, {})
        if name not in roles:
            if match["ife"]:
                return
            raise DbError("030006", f"The role {name} not found")
        del roles[name]
        members = self.members.get(tenant, {})
        for user in [u for u, r in members.items() if r == name]:
            del members[user]

    def _role_for_grant(self, principal: Principal, match: re.Match[str]) -> tuple[Role, str, str]:
        tenant = principal.tenant
        self._require_role_maintainer(principal, tenant)
        role_name = _ident(match["role"])
        role = self.roles.get(tenant, {}).get(role_name)
        if role is None:
            raise DbError("030006", f"The role {role_name} not found")
        return role, _unquote(match["db"]), _GRANT_NAMES[match["priv"].upper()]

    def _grant(self, principal: Principal, match: re.Match[str]) -> None:
        role, database, level = self._role_for_grant(principal, match)
        if _LEVEL[level] > _LEVEL.get(role.privileges.get(database, ""), 0):
            role.privileges[database] = level

    def _revoke(self, principal: Principal, match: re.Match[str]) -> None:
        role, database, level = self._role_for_grant(principal, match)
        held = role.privileges.get(database)
        if held != level:
            raise DbError("030033", f"cannot revoke the privilege {level} on database {database} of role")
        del role.privileges[database]

    def _tenant_add(self, principal: Principal, match: re.Match[str]) -> None:
        tenant = _ident(match["tenant"])
        self._require_role_maintainer(principal, tenant)
        user, role = _ident(match["user"]), _ident(match["role"])
        if user not in self.users:
            raise DbError("030008", f"The user {user} not found")
        if role not in SYSTEM_ROLES and role not in self.roles.get(tenant, {}):
            raise DbError("030006", f"The role {role} not found")
        members = self.members.setdefault(tenant, {})
        if user in members:
            raise DbError("030001", f"The member {user} of tenant {tenant} already exists")
        members[user] = role

    def _tenant_remove(self, principal: Principal, match: re.Match[str]) -> None:
        tenant = _ident(match["tenant"])
        self._require_role_maintainer(principal, tenant)
        user = _ident(match["user"])
        members = self.members.get(tenant, {})
        if user not in members:
            raise DbError("030002", f"The member {user} of tenant {tenant} not found")
        del members[user]
