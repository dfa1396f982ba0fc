"""What may be written in an identifier or a name.

An MRN with a zero-width space, a right-to-left override or a NUL in it looks like
another MRN on screen but is a different identifier: a visually identical second patient.
So identifiers refuse every control, format (bidi, zero-width), separator and unassigned
character, and text that is not in Unicode NFC (``é`` as ``e`` + a combining accent is
another identifier than the precomposed ``é``). Names are normalised to NFC (the same
letters, one spelling) and refuse controls and bidi controls, but keep the zero-width
(non-)joiners that Persian and Indic names are spelled with.

A refusal names the character by its code point and Unicode name, never the value.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

__all__ = ["Identifier", "Name", "check_identifier", "normalise_name"]

#: Categories never right in an identifier: controls, format characters (bidi, zero
#: width), line/paragraph separators, surrogates, private use, unassigned.
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
#: The only characters of those categories in ASCII: the C0 controls and DELETE (Cc).
_ASCII_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER: part of how some scripts spell names.
_JOINERS = frozenset({"\u200c", "\u200d"})


#: Unicode gives control characters no names; the ones people meet, by their alias.
_CONTROL_NAMES = {0x00: "NULL", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED",
                  0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE", 0x7F: "DELETE"}


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ord(ch), "a control character")
    return f"U+{ord(ch):04X} ({name})"


def _refuse(ch: str, where: str) -> PydanticCustomError:
    # the error type is a problem code (errors.CODES): pipeline problems carry it
    return PydanticCustomError(
        "security", f"contains {_describe(ch)}, a control or invisible character; refused "
        f"in {where}, where it would make a different value that looks the same")


def check_identifier(value: str) -> str:
    """``value`` if every character is visible text in NFC, else a refusal naming one."""
    if value.isascii():  # the common case, in C: ASCII is NFC and has only Cc to refuse
        found = _ASCII_CONTROL.search(value)
        if found is not None:
            raise _refuse(found.group(), "identifiers")
        return value
    for ch in value:
        category = unicodedata.category(ch)
        if category in _INVISIBLE or (category == "Zs" and ch != " "):
            raise _refuse(ch, "identifiers")
    if not unicodedata.is_normalized("NFC", value):
        odd = next((ch for ch in value if unicodedata.combining(ch)), value[0])
        raise PydanticCustomError(
            "security", f"is not in Unicode NFC form (see {_describe(odd)}); write it with "
            "precomposed characters, or it is a different identifier that looks the same")
    return value


def normalise_name(value: str) -> str:
    """``value`` in NFC; a control or bidi/invisible character refused, naming it."""
    if value.isascii():  # the common case, in C: ASCII is NFC and has only Cc to refuse
        found = _ASCII_CONTROL.search(value)
        if found is not None:
            raise _refuse(found.group(), "names")
        return value
    for ch in value:
        if unicodedata.category(ch) in _INVISIBLE and ch not in _JOINERS:
            raise _refuse(ch, "names")
    return unicodedata.normalize("NFC", value)


#: A business identifier as the clinic writes it (MRN, member id, lot number…).
Identifier = Annotated[str, AfterValidator(check_identifier)]
#: A person's or a place's name: NFC, no control or bidi characters.
Name = Annotated[str, AfterValidator(normalise_name)]
