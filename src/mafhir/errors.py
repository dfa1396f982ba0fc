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
HL7 ERR-3, exit codes and reports read the code, never the English message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CODES",
    "InputError",
    "MafhirError",
    "PermanentError",
    "PluginError",
    "Problem",
    "TransientError",
    "TransitionError",
    "ValidationFailed",
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
    """Base of every error mafhir raises on purpose."""

    transient: bool = False


class PermanentError(MafhirError):
    """Retrying the same input will fail the same way."""

    transient = False


class TransientError(MafhirError):
    """The same operation may succeed later (network, rate limit, busy server)."""

    transient = True


class InputError(PermanentError):
    """The input is wrong; ``problems`` lists each field and reason."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class TransitionError(InputError):
    """A lifecycle step that the current state does not allow."""

    def __init__(self, location: str, current: str, requested: str) -> None:
        self.current = current
        self.requested = requested
        super().__init__(
            [Problem(location, f"cannot go from '{current}' to '{requested}'")]
        )


class ValidationFailed(PermanentError):
    """FHIR content breaks structure or profile rules; ``issues`` says where."""

    def __init__(self, issues: Sequence[object]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


class PluginError(PermanentError):
    """A plugin failed to load or registered something invalid."""
