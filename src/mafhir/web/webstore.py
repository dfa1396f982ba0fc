"""The dashboard's own tables, in the outbox's database: users, API tokens, audit events.

Passwords are argon2id hashes (argon2-cffi's defaults, RFC 9106); an API token is random
(256 bits) and kept as its SHA-256 only, so a copy of the database gives neither.
Failed logins are counted per user: after :data:`MAX_FAILURES` in a row the account is
locked for :data:`LOCK_SECONDS` (a correct password then is refused too).

An API token expires: :data:`TOKEN_DAYS` after it is made unless made for fewer or more
days (1 to :data:`MAX_TOKEN_DAYS`), so a token copied into a script or a log stops working
by itself. A token of an earlier release, kept without an expiry, lasts :data:`TOKEN_DAYS`
from when it was made; its table gets the ``expires_at`` column when the store opens.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection

from ..errors import InputError, Problem
from ..storage import create_tables, open_engine, write_transaction

__all__ = ["LOCK_SECONDS", "MAX_FAILURES", "MAX_TOKEN_DAYS", "ROLES", "TOKEN_DAYS", "Login",
           "User", "WebStore"]

#: Roles, each allowed what the one before it is: viewer (counts, masked lists),
#: operator (replay, discard, reprocess, show patient data), admin (users).
ROLES = ("viewer", "operator", "admin")
MAX_FAILURES = 5
LOCK_SECONDS = 900.0
MIN_PASSWORD = 10
#: How long an API token lasts unless made for another number of days, and the most.
TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 3650
_DAY = 86400.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()
users = Table(
    "web_users", metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
)
tokens = Table(
    "web_tokens", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),  # None: an earlier release's token
)
audit = Table(
    "web_audit", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("recorded_at", Float, nullable=False, index=True),
    Column("who", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("resource", Text, nullable=False),
)

_HASHER = PasswordHasher()
#: Verified against when the user does not exist, so that a wrong name costs as long as
#: a wrong password (no way to list accounts by timing).
_DUMMY = _HASHER.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, role: str) -> bool:
        """Is this user's role ``role`` or above?"""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Login:
    """The result of a login: ``user`` when it succeeded, else why not."""

    result: Literal["ok", "wrong", "locked"]
    user: User | None = None


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebStore:
    """Users, tokens and audit events of the dashboard (SQLite file or PostgreSQL URL)."""

    def __init__(self, location: str) -> None:
        self.engine = open_engine(location, pool_size=4)
        create_tables(self.engine, metadata)
        self._add_expiry_column()

    def _add_expiry_column(self) -> None:
        """``web_tokens.expires_at`` on a table an earlier release made without it."""
        with self._tx() as conn:  # one opener at a time: the check and the ALTER together
            have = {c["name"] for c in inspect(conn).get_columns("web_tokens")}
            if "expires_at" not in have:
                kind = "DOUBLE PRECISION" if conn.dialect.name == "postgresql" else "FLOAT"
                conn.exec_driver_sql(f"ALTER TABLE web_tokens ADD COLUMN expires_at {kind}")

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, write_transaction(conn):
            yield conn

    def _one(self, query: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(query).first()

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, role: str, password: str) -> User:
        """A new user (or a new password and role for one that exists)."""
        problems = []
        if not _NAME.fullmatch(name):
            problems.append(Problem("NAME", "1-64 letters, digits or ._@- (starting with a "
                                            "letter or digit)", "value"))
        if role not in ROLES:
            problems.append(Problem("--role", f"one of {', '.join(ROLES)}", "code-invalid"))
        if len(password) < MIN_PASSWORD:
            problems.append(Problem("password", f"at least {MIN_PASSWORD} characters",
                                    "value"))
        if problems:
            raise InputError(problems)
        row = {"name": name, "role": role, "password_hash": _HASHER.hash(password),
               "failures": 0, "locked_until": 0.0, "created_at": time.time()}
        with self._tx() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == name)).first():
                conn.execute(update(users).where(users.c.name == name).values(
                    role=role, password_hash=row["password_hash"], failures=0,
                    locked_until=0.0))
            else:
                conn.execute(users.insert().values(row))
        return User(name, role)

    def user(self, name: str) -> User | None:
        row = self._one(select(users.c.name, users.c.role).where(users.c.name == name))
        return User(row[0], row[1]) if row else None

    def users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users.c.name, users.c.role, users.c.failures,
                                       users.c.locked_until, users.c.created_at)
                                .order_by(users.c.name)).all()
        return [dict(r._mapping) for r in rows]

    def login(self, name: str, password: str, now: float | None = None) -> Login:
        """Check a password; count a failure, lock after :data:`MAX_FAILURES` in a row."""
        now = time.time() if now is None else now
        row = self._one(select(users.c.password_hash, users.c.role, users.c.locked_until)
                        .where(users.c.name == name))
        stored = row[0] if row else _DUMMY
        ok: bool
        try:
            ok = _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if row is None:
            return Login("wrong")
        if row[2] > now:
            return Login("locked")
        with self._tx() as conn:
            if ok:
                values: dict[str, Any] = {"failures": 0, "locked_until": 0.0}
                if _HASHER.check_needs_rehash(stored):
                    values["password_hash"] = _HASHER.hash(password)
                conn.execute(update(users).where(users.c.name == name).values(**values))
                return Login("ok", User(name, row[1]))
            failures = int(conn.execute(
                update(users).where(users.c.name == name)
                .values(failures=users.c.failures + 1).returning(users.c.failures)
            ).scalar_one())
            if failures >= MAX_FAILURES:
                conn.execute(update(users).where(users.c.name == name).values(
                    failures=0, locked_until=now + LOCK_SECONDS))
                return Login("locked")
        return Login("wrong")

    def remove_user(self, name: str) -> bool:
        """Remove a user and every API token of theirs (their sessions end at the next
        request: each request looks the user up)."""
        with self._tx() as conn:
            conn.execute(delete(tokens).where(tokens.c.name == name))
            return conn.execute(delete(users).where(users.c.name == name)).rowcount == 1

    def unlock(self, name: str) -> bool:
        with self._tx() as conn:
            return conn.execute(update(users).where(users.c.name == name).values(
                failures=0, locked_until=0.0)).rowcount == 1

    # ------------------------------------------------------------------ API tokens
    def new_token(self, name: str, days: int = TOKEN_DAYS) -> str:
        """A new API token for user ``name``, valid ``days``: shown once, kept as its hash."""
        return self.issue_token(name, days)[0]

    def issue_token(self, name: str, days: int = TOKEN_DAYS) -> tuple[str, float]:
        """A new API token for user ``name`` and when it expires (epoch seconds)."""
        if isinstance(days, bool) or not isinstance(days, int) \
                or not 1 <= days <= MAX_TOKEN_DAYS:
            raise InputError([Problem("--days", f"a whole number of days from 1 to "
                                                f"{MAX_TOKEN_DAYS}", "value")])
        if self.user(name) is None:
            raise InputError([Problem("NAME", "no such user (mafhir users add first)",
                                      "not-found")])
        token = "mfh_" + secrets.token_urlsafe(32)
        now = time.time()
        expires = now + days * _DAY
        with self._tx() as conn:
            conn.execute(tokens.insert().values(name=name, token_sha256=_token_digest(token),
                                                created_at=now, expires_at=expires))
        return token, expires

    def _token_row(self, token: str) -> Any:
        return self._one(select(users.c.name, users.c.role, tokens.c.created_at,
                                tokens.c.expires_at)
                         .join(tokens, tokens.c.name == users.c.name)
                         .where(tokens.c.token_sha256 == _token_digest(token)))

    @staticmethod
    def _expiry(row: Any) -> float:
        return float(row.expires_at) if row.expires_at is not None \
            else float(row.created_at) + TOKEN_DAYS * _DAY

    def token_user(self, token: str) -> User | None:
        """The user an API token belongs to (None: unknown or expired token)."""
        row = self._token_row(token)
        if row is None or time.time() >= self._expiry(row):
            return None
        return User(row.name, row.role)

    def token_expired(self, token: str) -> bool:
        """Is this a token that was valid and has expired (so the refusal can say so)?"""
        row = self._token_row(token)
        return row is not None and time.time() >= self._expiry(row)

    # ------------------------------------------------------------------ audit
    def record(self, who: str, action: str, event: dict[str, Any]) -> None:
        """Keep one AuditEvent (:func:`mafhir.web.audit.web_event`)."""
        with self._tx() as conn:
            conn.execute(audit.insert().values(recorded_at=time.time(), who=who[:64],
                                               action=action, resource=json.dumps(event)))

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest AuditEvents, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit.c.resource).order_by(audit.c.id.desc())
                                .limit(limit)).scalars().all()
        return [json.loads(r) for r in rows]

    def close(self) -> None:
        self.engine.dispose()
