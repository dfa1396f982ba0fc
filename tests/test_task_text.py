"""Identifiers and names: every ASCII character is judged as the Unicode categories say
(the ASCII fast path refuses exactly the controls the general rule refuses)."""

from __future__ import annotations

import unicodedata

import pytest
from pydantic_core import PydanticCustomError

from mafhir.tasks.text import check_identifier, normalise_name

#: The rule as the module's docstring states it, character by character (no fast path).
REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def refused_by_rule(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in REFUSED_CATEGORIES or (category == "Zs" and ch != " ")


@pytest.mark.parametrize("check", [check_identifier, normalise_name])
@pytest.mark.parametrize("code", range(128))
def test_each_ascii_character_is_refused_exactly_when_its_category_is(check, code):
    ch = chr(code)
    value = f"ab{ch}cd{ch}"
    if refused_by_rule(ch):
        with pytest.raises(PydanticCustomError) as err:
            check(value)
        assert err.value.type == "security"
        assert f"U+{code:04X}" in str(err.value)  # named by code point, not the value
        assert "names" in str(err.value) if check is normalise_name else \
            "identifiers" in str(err.value)
    else:
        assert check(value) == value


def test_the_first_offending_character_is_the_one_named():
    with pytest.raises(PydanticCustomError, match="U\\+0009"):
        normalise_name("Ann\tMarie\x00")
    with pytest.raises(PydanticCustomError, match="U\\+007F"):
        check_identifier("MRN\x7f\x01")


def test_non_ascii_names_are_still_normalised_and_checked():
    assert normalise_name("Jose\u0301") == "Jos\u00e9"  # NFC
    assert normalise_name("Zo\u00eb\u200cx") == "Zo\u00eb\u200cx"  # a joiner is kept
    with pytest.raises(PydanticCustomError, match="U\\+200E"):
        normalise_name("Ren\u00e9\u200e")  # a bidi mark refused
    with pytest.raises(PydanticCustomError, match="NFC"):
        check_identifier("Jose\u0301")
