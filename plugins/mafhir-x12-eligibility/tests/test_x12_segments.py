"""The X12 segment layer: separators come from the ISA, structure problems are named."""

from __future__ import annotations

import pytest

from mafhir.errors import InputError
from mafhir_x12_eligibility.segments import Delimiters, build_segment, parse_interchange

SUBSCRIBER_270 = "x12/270/linuxforhealth-x12/subscriber-health-benefit-check.270"


def test_corpus_270_reads_with_its_own_separators(corpus):
    ic = parse_interchange((corpus / SUBSCRIBER_270).read_text())
    assert ic.delimiters == Delimiters("*", ":", "^", "~")
    assert [t.code for t in ic.transactions] == ["270"]
    tx = ic.transactions[0]
    # counted by hand in the file: 13 segments ST..SE, so 11 between them
    assert len(tx.segments) == 11 and tx.version == "005010X279A1"
    assert ic.control == "000000907" and ic.sender == "000000005" and ic.warnings == []


def test_other_separators_are_read_from_the_isa(corpus):
    """The same interchange written with | element, } component, \\ repetition and !
    terminator reads to the same segments: nothing assumes * and ~."""
    text = (corpus / SUBSCRIBER_270).read_text()
    original = parse_interchange(text)
    other = text.replace("*", "|").replace("~", "!").replace("^", "\\")
    other = other[:104] + "}" + other[105:]  # ISA16, the component separator
    ic = parse_interchange(other)
    assert ic.delimiters == Delimiters("|", "}", "\\", "!")
    assert [(s.id, s.elements) for s in ic.transactions[0].segments] == \
        [(s.id, s.elements) for s in original.transactions[0].segments]


@pytest.mark.parametrize(("name", "where"), [
    ("x12_bad_first_line.txt", "ISA-02"),       # ISA02 9 wide instead of 10
    ("x12_no_isa_line.txt", "SEG[1]"),
    ("x12_bad_segment_identifier.txt", "SEG[6]"),  # a line beginning with "*"
])
def test_broken_corpus_files_are_refused_naming_where(corpus, name, where):
    text = (corpus / "x12/edge-cases/imsweb-x12-parser" / name).read_text()
    with pytest.raises(InputError) as err:
        parse_interchange(text)
    assert err.value.problems[0].location == where, err.value.problems


def test_count_and_control_mismatches_are_warnings_not_errors(corpus):
    # the corpus 271: SE says 22 (the set has 18 segments, counted by hand) and IEA02
    # 000014420 is not ISA13 000003438
    ic = parse_interchange((corpus / "x12/271/imsweb-x12-parser/x271.txt").read_text())
    assert [w.location for w in ic.warnings] == ["SEG[20] SE-01", "SEG[22] IEA-02"]
    assert "the set has 18" in ic.warnings[0].message


def test_missing_trailer_is_an_error(corpus):
    text = (corpus / SUBSCRIBER_270).read_text()
    cut = text[:text.index("SE*")]
    with pytest.raises(InputError, match="ends early"):
        parse_interchange(cut)


def test_a_value_holding_a_separator_is_refused_not_split():
    d = Delimiters()
    assert build_segment("NM1", ["IL", "1", "OBRIEN", "", ""], d) == "NM1*IL*1*OBRIEN~"
    with pytest.raises(InputError) as err:
        build_segment("NM1", ["IL", "1", "O*BRIEN"], d)
    assert err.value.problems[0].location == "NM103"
    with pytest.raises(InputError):
        build_segment("REF", ["6P", "G~1"], d)
