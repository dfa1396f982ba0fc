"""Entry point: build the click group, let every plugin add its commands, and run it
inside one error boundary.

Every way a command can fail ends the same way: one ``error: …`` line on stderr and the
documented exit status (docs/errors.md) — never a traceback for an ordinary mistake (a
missing file, a folder given for a file, a bad configuration, Ctrl-C). ``--debug`` (or
``MAFHIR_DEBUG=1``) adds the traceback, with patient data masked by the same redaction as
the logs.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback

import click

from .. import __version__
from ..errors import EXIT_FAILED, EXIT_INPUT, EXIT_TEMPFAIL, MafhirError, exit_code, unexpected
from ..plugins import get_manager
from .lazy import LazyGroup
from .logs import configure_logging

__all__ = ["EXIT_INTERRUPTED", "build_cli", "error_line", "main"]

#: Ctrl-C / SIGINT outside a command's own graceful stop (128 + SIGINT, as shells do).
EXIT_INTERRUPTED = 130

#: OSErrors that mean "the input named is not there / not a file / not readable": the
#: user's mistake, nothing was done (exit 2). Others (disk full, a reset connection) are not.
_INPUT_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM,
                 errno.ENAMETOOLONG, errno.ELOOP}
#: OSErrors that may go away by themselves: retry later (exit 75).
_TRANSIENT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT, errno.EHOSTUNREACH,
                     errno.ENETUNREACH, errno.EAGAIN, errno.ENOSPC}


def build_cli() -> click.Group:
    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="mafhir")
    @click.option("--debug", is_flag=True, envvar="MAFHIR_DEBUG", expose_value=False,
                  is_eager=True, help="On an error, also print the traceback (patient data "
                                      "masked). Also MAFHIR_DEBUG=1.")
    def cli() -> None:
        """mafhir: a medical assistant's clinic work as US Core FHIR R4.

        Tasks (vitals, immunization, appointment, coverage, and what plugins add) are
        mapped to FHIR, validated, and delivered through plugins.
        """

    get_manager().hook.register_commands(cli=cli)
    return cli


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line and the exit status for an error that reached the boundary."""
    if isinstance(exc, MafhirError):
        return str(exc), exit_code(exc)
    if isinstance(exc, OSError):
        what = exc.strerror or type(exc).__name__
        where = f"{exc.filename}: " if exc.filename is not None else ""
        if exc.errno in _INPUT_ERRNOS:
            return f"{where}{what}", EXIT_INPUT
        if exc.errno in _TRANSIENT_ERRNOS:
            return f"{where}{what}", EXIT_TEMPFAIL
        return f"{where}{what}", EXIT_FAILED
    # a bug, not the user's doing: its type and where, never its text (it may quote input)
    return f"internal error: {unexpected(exc)}", EXIT_FAILED


def _debugging(argv: list[str]) -> bool:
    flag = os.environ.get("MAFHIR_DEBUG", "").strip().lower()
    return "--debug" in argv or flag not in ("", "0", "false", "no")


def _traceback(exc: BaseException) -> None:
    """The frames of ``exc`` and of its causes, each with its type but not its message:
    a message may quote a patient's data, the code's own lines cannot."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    for n, err in enumerate(reversed(chain)):
        if n:
            click.echo("\nwhich led to:", err=True)
        click.echo("Traceback (most recent call last):", err=True)
        click.echo("".join(traceback.format_tb(err.__traceback__)).rstrip(), err=True)
        click.echo(f"{type(err).__module__}.{type(err).__qualname__} (message withheld: it "
                   f"may hold patient data)", err=True)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debugging(args)
    try:
        configure_logging()  # before any plugin or library can log: redacted, libraries held
        cli = build_cli()
    except MafhirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exit_code(exc))  # a broken plugin: PluginError, 2
    try:
        status = cli.main(args=args, prog_name="mafhir", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help, --version, ctx.exit(n)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: click's message, our spelling, exit 2
        ctx = getattr(exc, "ctx", None)
        if ctx is not None and ctx.command.get_help_option(ctx) is not None:
            click.echo(f"Try '{ctx.command_path} --help' for help.", err=True)
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("error: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except BaseException as exc:
        line, status = error_line(exc)
        if debug:
            _traceback(exc)
        click.echo(f"error: {line}", err=True)
        sys.exit(status)
    # without standalone mode click returns ctx.exit(n)'s n instead of raising
    sys.exit(status if isinstance(status, int) else 0)
