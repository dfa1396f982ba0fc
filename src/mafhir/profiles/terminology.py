"""Value set membership from compiled expansions: yes, no, or cannot tell."""

from __future__ import annotations

from typing import Any

__all__ = ["ValueSet", "member"]

JSON = dict[str, Any]


class ValueSet:
    """A compiled value set: codes by system, and the systems it cannot enumerate."""

    __slots__ = ("all_codes", "codes", "open", "url")

    def __init__(self, url: str, data: JSON) -> None:
        self.url = url
        self.codes: dict[str, frozenset[str]] = {
            system: frozenset(codes) for system, codes in data.get("codes", {}).items()}
        self.open: frozenset[str] = frozenset(data.get("open", []))
        self.all_codes: frozenset[str] = frozenset().union(*self.codes.values()) \
            if self.codes else frozenset()

    def contains(self, system: str | None, code: str) -> bool | None:
        """True/False, or None when the answer depends on a system this set cannot list."""
        if system is None:  # a bare code (the ``code`` datatype): its system is implied
            if code in self.all_codes:
                return True
            return None if self.open else False
        codes = self.codes.get(system)
        if codes is not None and code in codes:
            return True
        if system in self.open or "*" in self.open:
            return None
        return False


def member(vs: ValueSet, value: Any, type_code: str) -> tuple[bool | None, bool]:
    """(is ``value`` in ``vs``, does it carry any code at all) for a code, Coding,
    CodeableConcept or Quantity value."""
    if type_code in ("code", "string", "uri") and isinstance(value, str):
        return vs.contains(None, value), True
    if not isinstance(value, dict):
        return None, False
    if type_code == "CodeableConcept":
        codings = [c for c in value.get("coding", []) or [] if isinstance(c, dict)]
    else:  # Coding, Quantity
        codings = [value]
    verdicts = [vs.contains(c.get("system"), c["code"]) if isinstance(c.get("system"), str)
                else None
                for c in codings if isinstance(c.get("code"), str)]
    if not verdicts:
        return None, False
    if True in verdicts:
        return True, True
    if None in verdicts:
        return None, True
    return False, True
