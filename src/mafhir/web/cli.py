"""``mafhir serve`` and ``mafhir users …``: the dashboard on the command line.

Only click is imported here; the web stack (Starlette, uvicorn, argon2) is imported when
a command runs, so the core CLI stays light and says how to install the ``[web]`` extra
when it is missing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NoReturn

import click

from ..errors import EXIT_INPUT, InputError, exit_code
from ..outbox.cli import db_option, os_viewer

__all__ = ["PASSWORD_ENV", "serve_command", "users_group"]

PASSWORD_ENV = "MAFHIR_USER_PASSWORD"
_USER_SYSTEM = "urn:mafhir:dashboard:user"


def _need_web() -> None:
    try:
        import argon2  # noqa: F401
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        _usage(f"the dashboard needs the web extra: pip install 'mafhir[web]' ({exc.name} "
               f"is missing)")


def _usage(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INPUT)


def _refused(exc: InputError) -> NoReturn:
    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(exit_code(exc))


def check_bind(host: str, cert: str | None, key: str | None, insecure_http: bool) -> None:
    """Loopback unless told; another address only with TLS (cert and key) or
    ``--insecure-http`` said out loud."""
    from .security import is_loopback

    if (cert is None) != (key is None):
        _usage("--tls-cert and --tls-key go together")
    if not is_loopback(host) and cert is None and not insecure_http:
        _usage(f"--host {host}: not a loopback address; serving patient data to the network "
               f"needs TLS (--tls-cert and --tls-key), or --insecure-http if a proxy in "
               f"front of it does TLS")


@click.command("serve")
@db_option
@click.option("--inbound", default=None, metavar="STORE",
              help="The listener's message store (mafhir listen --store): the inbound pages.")
@click.option("--listener", default=None, metavar="HOST:PORT",
              help="The listener's MLLP address: reprocess sends a message to it again.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--insecure-http", is_flag=True,
              help="Allow plain HTTP on a non-loopback address (TLS done by a proxy).")
def serve_command(db: str, inbound: str | None, listener: str | None, host: str, port: int,
                  tls_cert: str | None, tls_key: str | None, insecure_http: bool) -> None:
    """The web dashboard: outbox, dead letters, inbound messages, behind a login.

    Users come from `mafhir users add`; sessions are signed with $MAFHIR_WEB_SECRET (else
    a random key: a restart signs everyone out).
    """
    _need_web()
    check_bind(host, tls_cert, tls_key, insecure_http)
    import uvicorn

    from ..hl7v2.cli import split_address
    from .app import WebConfig, create_app

    address = split_address(listener) if listener else None
    if inbound is not None and not os.path.exists(inbound) and "://" not in inbound:
        _usage(f"--inbound {inbound}: no such message store")
    try:
        app = create_app(WebConfig(db=db, inbound=inbound, listener=address,
                                   https=tls_cert is not None))
    except InputError as exc:  # e.g. MAFHIR_OIDC_* incomplete: every variable named
        _refused(exc)
    scheme = "https" if tls_cert else "http"
    click.echo(f"mafhir serve on {scheme}://{host}:{port}/ (outbox "
               f"{app.state.dashboard.outbox.url})", err=True)
    uvicorn.run(app, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                log_level="warning", access_log=False, proxy_headers=False,
                server_header=False)


@click.group("users")
def users_group() -> None:
    """Users of the dashboard (mafhir serve): add, list, token, remove, unlock."""


def _store(db: str) -> Any:
    _need_web()
    from .webstore import WebStore

    return WebStore(db)


def _audit(store: Any, action: str, name: str, detail: str) -> None:
    from .audit import web_event

    who = f"{os_viewer()} (mafhir users)"
    store.record(who, action, web_event(action, who, time.time(),
                                        entity=(_USER_SYSTEM, name), detail=detail))


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), required=True)
@db_option
def users_add(name: str, role: str, db: str) -> None:
    """Add a user (or set an existing user's role and password).

    The password comes from $MAFHIR_USER_PASSWORD, else a prompt (never the command line).
    """
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    store = _store(db)
    try:
        user = store.add_user(name, role, password)
        _audit(store, "user-add", user.name, f"role {user.role}")
    except InputError as exc:
        _refused(exc)
    finally:
        store.close()
    click.echo(f"user {user.name} ({user.role}) saved")


@users_group.command("token")
@click.argument("name")
@click.option("--days", type=int, default=None, metavar="N",
              help="How many days the token is valid (default 90, at most 3650).")
@db_option
def users_token(name: str, days: int | None, db: str) -> None:
    """A new API token for NAME (printed once; only its hash is kept). It expires after
    --days (default 90); the expiry date goes to stderr, the token alone to stdout."""
    store = _store(db)
    try:
        token, expires = store.issue_token(name) if days is None \
            else store.issue_token(name, days)
        _audit(store, "token-add", name, "API token created")
    except InputError as exc:
        _refused(exc)
    finally:
        store.close()
    click.echo(token)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))
    click.echo(f"expires {when}", err=True)


@users_group.command("list")
@db_option
def users_list(db: str) -> None:
    """The users, their roles and whether they are locked out."""
    store = _store(db)
    now = time.time()
    for u in store.users():
        locked = " (locked)" if u["locked_until"] > now else ""
        click.echo(f"{u['name']}\t{u['role']}{locked}")
    store.close()


@users_group.command("remove")
@click.argument("name")
@db_option
def users_remove(name: str, db: str) -> None:
    """Remove a user and their API tokens (their sessions end at once)."""
    store = _store(db)
    try:
        if not store.remove_user(name):
            _usage(f"no user {name!r}")
        _audit(store, "user-remove", name, "removed with their API tokens")
    finally:
        store.close()
    click.echo(f"{name} removed")


@users_group.command("unlock")
@click.argument("name")
@db_option
def users_unlock(name: str, db: str) -> None:
    """Lift a lockout after too many failed sign-ins."""
    store = _store(db)
    try:
        if not store.unlock(name):
            _usage(f"no user {name!r}")
        _audit(store, "user-add", name, "unlocked")
    finally:
        store.close()
    click.echo(f"{name} unlocked")
