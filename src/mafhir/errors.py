"""The one error hierarchy of mafhir.

Every error is meant to be shown to a person: its message names the field and the
reason, and never carries patient data (values of names, identifiers or dates).
Whether retrying can help is explicit, so queues and connectors can decide without
guessing::

    MafhirError
     ├── PermanentError            retrying the same input gives the same failure
     │    ├── InputError           the clinic's input is wrong (each problem names its field)
     │    │    └── TransitionError an illegal lifecycle step (names both states)
     │    ├── ValidationFailed     FHIR output/input fails structure or profile rules
     │    └── PluginError          a plugin is broken or registers something invalid
     └── TransientError            may succeed later (timeouts, 429, 503, …)

Every :class:`Problem` carries a stable ``code`` from :data:`CODES` (the FHIR
OperationOutcome ``issue.code`` vocabulary, so an OperationOutcome takes it as it is).
Every :class:`MafhirError` carries structured fields — ``code``, ``status`` (HTTP, or
None), ``retry_after``, ``outcome`` (the OperationOutcome a server sent) and
``problems`` — set where it is raised. HL7 ERR-3, :func:`operation_outcome`,
:func:`exit_code` and reports read those fields, never the English message
(``docs/errors.md`` lists every code).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar

__all__ = [
    "CODES",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_OK",
    "EXIT_TEMPFAIL",
    "InputError",
    "MafhirError",
    "PermanentError",
    "PluginError",
    "Problem",
    "TransientError",
    "TransitionError",
    "ValidationFailed",
    "as_code",
    "exit_code",
    "operation_outcome",
    "unexpected",
]


#: The stable problem codes (FHIR IssueType, http://hl7.org/fhir/issue-type) and what
#: each means here. ``invalid`` is the default for a problem that names none.
CODES: dict[str, str] = {
    "invalid": "the content is not valid (the general code)",
    "structure": "the structure is broken (framing, segments, JSON shape, duplicate keys)",
    "required": "a required element is missing",
    "value": "a value is not of its data type or outside its range (dates, numbers, sizes)",
    "invariant": "a rule between elements does not hold",
    "code-invalid": "a code is not in its table or value set",
    "not-supported": "the kind of content (message type, version, mode) is not supported",
    "not-found": "a referenced thing (patient, order, sender) is not known",
    "duplicate": "the content repeats something that exists (a reused control id)",
    "conflict": "the content contradicts what is stored",
    "security": "the content carries what must not be kept (credentials, unsafe characters)",
    "too-long": "the content is larger than the configured limit",
    "business-rule": "held for review by the clinic's rules (unknown identity, no time zone)",
    "incomplete": "an element the profile wants is absent in the source (kept, reported)",
    "processing": "the application failed (an internal error)",
    "transient": "a temporary failure; trying again may succeed",
}


def as_code(value: object) -> str:
    """``value`` when it is one of :data:`CODES` (a validation issue's code), else
    ``invalid``: what an OperationOutcome from elsewhere says, kept when it fits."""
    return value if isinstance(value, str) and value in CODES else "invalid"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one input: where (``location``), why (``message``) and what
    kind of problem it is (``code``, one of :data:`CODES`), for machines to act on."""

    location: str
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class MafhirError(Exception):
    """Base of every error mafhir raises on purpose, with its structured fields.

    ``code`` (one of :data:`CODES`) says what kind of failure it is, ``status`` the HTTP
    status a server answered (None when there was none), ``retry_after`` the seconds a
    server asked to wait, ``outcome`` the OperationOutcome it sent, ``problems`` the
    Problems behind it. Subclasses that set these before calling ``__init__`` (the
    fhir-rest errors do) keep them: a field given here as None is left as it is.
    """

    transient: bool = False
    #: The code of an error raised without one (per class).
    default_code: ClassVar[str] = "processing"
    status: int | None = None
    retry_after: float | None = None
    outcome: dict[str, Any] | None = None
    problems: tuple[Problem, ...] = ()

    def __init__(self, *args: object, code: str | None = None, status: int | None = None,
                 retry_after: float | None = None, outcome: dict[str, Any] | None = None,
                 problems: Sequence[Problem] = ()) -> None:
        super().__init__(*args)
        if code is not None:
            if code not in CODES:
                raise ValueError(f"unknown error code {code!r} (see mafhir.errors.CODES)")
            self._code = code
        if status is not None:
            self.status = status
        if retry_after is not None:
            self.retry_after = retry_after
        if outcome is not None:
            self.outcome = outcome
        if problems:
            self.problems = tuple(problems)

    @property
    def code(self) -> str:
        """The code given, else the first problem's, else the class's default."""
        given = getattr(self, "_code", None)
        if given is not None:
            return str(given)
        if self.problems:
            return self.problems[0].code
        return "transient" if self.transient else type(self).default_code


class PermanentError(MafhirError):
    """Retrying the same input will fail the same way."""

    transient = False


class TransientError(MafhirError):
    """The same operation may succeed later (network, rate limit, busy server)."""

    transient = True
    default_code = "transient"


class InputError(PermanentError):
    """The input is wrong; ``problems`` lists each field and reason."""

    default_code = "invalid"

    def __init__(self, problems: Sequence[Problem] | str, code: str = "invalid") -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems, code)]
        problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in problems), problems=problems)


class TransitionError(InputError):
    """A lifecycle step that the current state does not allow."""

    def __init__(self, location: str, current: str, requested: str) -> None:
        self.current = current
        self.requested = requested
        super().__init__(
            [Problem(location, f"cannot go from '{current}' to '{requested}'",
                     "business-rule")]
        )


class ValidationFailed(PermanentError):
    """FHIR content breaks structure or profile rules; ``issues`` says where."""

    default_code = "invalid"

    def __init__(self, issues: Sequence[object]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(i) for i in self.issues),
                         problems=[_issue_problem(i) for i in self.issues])


def _issue_problem(issue: object) -> Problem:
    """A validation issue (``expression``, ``diagnostics``, ``code``) as a Problem."""
    return Problem(str(getattr(issue, "expression", "")),
                   str(getattr(issue, "diagnostics", issue)),
                   as_code(getattr(issue, "code", None)))


class PluginError(PermanentError):
    """A plugin failed to load or registered something invalid (the installation, like
    a configuration, is what is wrong: exit 2)."""

    default_code = "invalid"


# ---------------------------------------------------------------------- exit codes
EXIT_OK = 0  #: everything done
EXIT_FAILED = 1  #: some items failed or were refused (the rest were done)
EXIT_INPUT = 2  #: bad input, usage or configuration: nothing was done
EXIT_TEMPFAIL = 75  #: may work later (sysexits EX_TEMPFAIL; scripts and cron retry on it)

#: The one table of exit codes, by the error's class (first match wins); a ``transient``
#: code counts as :class:`TransientError` and a ``processing`` one (an internal failure,
#: never the input's fault) as a failure, whatever the class.
EXIT_BY_CLASS: tuple[tuple[type[MafhirError], int], ...] = (
    (TransientError, EXIT_TEMPFAIL),
    (InputError, EXIT_INPUT),
    (PluginError, EXIT_INPUT),
    (MafhirError, EXIT_FAILED),
)


def exit_code(exc: BaseException | None) -> int:
    """The process exit code for ``exc`` (None: success), from :data:`EXIT_BY_CLASS`."""
    if exc is None:
        return EXIT_OK
    if not isinstance(exc, MafhirError):
        return EXIT_FAILED
    if exc.transient or exc.code == "transient":
        return EXIT_TEMPFAIL
    if exc.code == "processing":
        return EXIT_FAILED
    return next(code for cls, code in EXIT_BY_CLASS if isinstance(exc, cls))


# ---------------------------------------------------------------------- OperationOutcome
def operation_outcome(source: BaseException | Iterable[Problem],
                      severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome for an error or a list of Problems: one issue per Problem,
    ``issue.code`` its code. An error without Problems is one issue with its own code;
    an exception that is not mafhir's is ``processing`` with :func:`unexpected` as text
    (never its message, which may quote input)."""
    if isinstance(source, BaseException):
        if isinstance(source, MafhirError):
            problems = source.problems or (Problem("", str(source), source.code),)
        else:
            problems = (Problem("", unexpected(source), "processing"),)
    else:
        problems = tuple(source)
    issues: list[dict[str, Any]] = []
    for p in problems:
        issue: dict[str, Any] = {"severity": severity, "code": p.code,
                                 "diagnostics": p.message}
        if p.location:
            issue["expression"] = [p.location]
        issues.append(issue)
    if not issues:
        issues = [{"severity": "information", "code": "informational",
                   "diagnostics": "no issues"}]
    return {"resourceType": "OperationOutcome", "issue": issues}


# ---------------------------------------------------------------------- unexpected errors
def unexpected(exc: BaseException, frames: int = 6) -> str:
    """An unexpected exception for a log or a dead letter: its type and where it was
    raised (the innermost ``frames`` frames, file:line in function), without its
    message or any local value — those may quote a patient's data; the frames cannot.

    ``KeyError at mafhir/outbox/ledger.py:131 in ledger_rows ← mafhir/outbox/engine.py:238
    in _process``: a production bug is found from this, not from "KeyError" alone.
    """
    where = [f"{_short(f.filename)}:{f.lineno} in {f.name}"
             for f in traceback.extract_tb(exc.__traceback__)[-frames:]]
    name = type(exc).__name__
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    text = f"{name} at {' ← '.join(reversed(where))}" if where else name
    if cause is not None and cause is not exc:
        text += f" (from {type(cause).__name__})"
    return text


def _short(filename: str) -> str:
    """A source path from its package down (``mafhir/outbox/engine.py``), not the
    machine's directories."""
    parts = PurePath(filename).parts
    for marker in ("site-packages", "src", "plugins"):
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            rest = parts[i + 1:]
            if marker == "plugins" and len(rest) > 2 and rest[1] == "src":
                rest = rest[2:]
            return "/".join(rest) or PurePath(filename).name
    return "/".join(parts[-2:])
