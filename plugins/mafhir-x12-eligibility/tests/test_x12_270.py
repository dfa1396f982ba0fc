"""270 out: what mafhir writes from a coverage task, and pyx12 validating every one of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers_x12 import bundle_of, clinic_ctx, coverage_task

from mafhir.errors import InputError, PermanentError
from mafhir.resourceset import ResourceSet
from mafhir_x12_eligibility.config import Partner, load_partner, npi_valid
from mafhir_x12_eligibility.validate import pyx12_problems, validate_270
from mafhir_x12_eligibility.write270 import request_from_fhir, write_270

NOW = datetime(2026, 3, 4, 14, 15, tzinfo=UTC)
PARTNER = Partner(sender_id="CLINIC01", receiver_id="ACMECH", provider_npi="1234567893",
                  provider_name="Maple Street Family Clinic")


def written(task: dict, control: int = 42) -> str:
    resources = ResourceSet.from_bundle(bundle_of(task))
    return write_270(request_from_fhir(resources, f"MAFHIR{control:09d}"), PARTNER, control,
                     NOW)


def segments(text: str) -> list[str]:
    return [s.strip() for s in text.split("~") if s.strip()]


def test_subscriber_270_segment_by_segment():
    text = written(coverage_task("W123456789"))
    assert segments(text)[1:] == [
        "GS*HS*CLINIC01*ACMECH*20260304*1415*42*X*005010X279A1",
        "ST*270*0042*005010X279A1",
        "BHT*0022*13*MAFHIR000000042*20260304*1415",
        "HL*1**20*1",
        "NM1*PR*2*Aetna*****PI*60054",
        "HL*2*1*21*1",
        "NM1*1P*2*Maple Street Family Clinic*****XX*1234567893",
        "HL*3*2*22*0",
        "TRN*1*MAFHIR000000042*9CLINIC010",
        "NM1*IL*1*Rivera*Ana****MI*W123456789",
        "DMG*D8*20190504*F",
        "DTP*291*D8*20260304",
        "EQ*30",
        "EQ*98",
        "SE*14*0042",  # ST…SE counted by hand: 14
        "GE*1*42",
        "IEA*1*000000042",
    ]
    isa = segments(text)[0] + "~"
    assert len(isa) == 106 and isa[3] == "*" and isa[104:106] == ":~"
    assert isa[90:99] == "000000042" and isa[82] == "^"


def test_dependent_gets_its_own_loop_and_the_subscriber_is_named():
    text = written(coverage_task("W123456789", "child"))
    segs = segments(text)
    assert "HL*3*2*22*1" in segs and "HL*4*3*23*0" in segs
    sub = segs.index("NM1*IL*1*Rivera*Luis****MI*W123456789")
    dep = segs.index("NM1*03*1*Rivera*Ana")
    assert sub < segs.index("HL*4*3*23*0") < dep
    assert segs[sub + 1] == "DMG*D8*19850203"  # the subscriber's birth date
    assert segs[dep + 1:dep + 6] == ["DMG*D8*20190504*F", "INS*N*19", "DTP*291*D8*20260304",
                                     "EQ*30", "EQ*98"]
    assert segs.index("TRN*1*MAFHIR000000042*9CLINIC010") == dep - 1  # 2000D's trace


@pytest.mark.parametrize(("relationship", "service_type"), [
    ("self", "98"), ("self", "30"), ("child", "98"), ("spouse", "MH"), ("other", "UC"),
])
def test_every_270_mafhir_writes_passes_pyx12(relationship, service_type):
    text = written(coverage_task("W123456789", relationship, service_type=service_type), 7)
    assert pyx12_problems(text) == []
    validate_270(text)  # raises otherwise


def test_pyx12_catches_a_broken_270():
    """The validation is real: a 270 with an unknown service type, or without the member
    loop's NM1, is refused with the segment named."""
    good = written(coverage_task("W123456789"))
    bad_code = good.replace("EQ*98~", "EQ*ZZZ~")
    problems = pyx12_problems(bad_code)
    assert problems and any("EQ" in p.location for p in problems), problems
    with pytest.raises(PermanentError, match="005010X279A1"):
        validate_270(bad_code)
    no_subscriber = good.replace("NM1*IL*1*Rivera*Ana****MI*W123456789~\n", "")
    assert pyx12_problems(no_subscriber)


def test_the_corpus_270s_pass_the_same_validation(corpus):
    for name in ("subscriber", "dependent"):
        text = (corpus / f"x12/270/linuxforhealth-x12/{name}-health-benefit-check.270"
                ).read_text()
        assert pyx12_problems(text) == [], name


def test_missing_pieces_are_named_before_anything_is_written():
    task = coverage_task("W123456789")
    task["patient"] = {"mrn": "M-unknown"}  # a known patient: only the MRN in the Bundle
    resources = ResourceSet.from_bundle(bundle_of(task, clinic_ctx()))
    with pytest.raises(InputError) as err:
        request_from_fhir(resources, "X")
    assert err.value.problems[0].location == "CoverageEligibilityRequest.patient"


def test_a_name_with_a_separator_is_refused():
    task = coverage_task("W123456789")
    task["patient"]["family"] = "O*Brien"
    with pytest.raises(InputError) as err:
        written(task)
    assert err.value.problems[0].location == "NM103"


def test_npi_check_digit():
    # 1234567893: Luhn over 80840123456789 gives check digit 3 (computed by hand)
    assert npi_valid("1234567893") and not npi_valid("1234567890")
    assert not npi_valid("123456789")


def test_partner_configuration(tmp_path, monkeypatch):
    config = tmp_path / "mafhir.toml"
    config.write_text('[x12]\nsender_id = "CLINIC01"\nprovider_npi = "1234567893"\n'
                      'provider_name = "Maple"\n\n[x12.acme]\nurl = "https://ch.example/core"\n'
                      'receiver_id = "ACMECH"\nauth = "basic"\nusername = "u"\n'
                      'password = "${ACME_PW}"\n')
    partner = load_partner("acme", config)
    assert (partner.sender_id, partner.receiver_id, partner.envelope) == \
        ("CLINIC01", "ACMECH", "soap")
    monkeypatch.setenv("ACME_PW", "s3cret")
    assert partner.secret().reveal() == "s3cret"
    assert "s3cret" not in repr(partner)
    config.write_text(config.read_text().replace('"${ACME_PW}"', '"s3cret"'))
    with pytest.raises(InputError, match="secret"):
        load_partner("acme", config)
    config.write_text('[x12]\nsender_id = "C"\nprovider_npi = "1234567890"\n'
                      'provider_name = "M"\nreceiver_id = "R"\n[x12.acme]\nurll = "x"\n')
    with pytest.raises(InputError) as err:
        load_partner("acme", config)
    where = {p.location for p in err.value.problems}
    assert "x12.acme.provider_npi" in where and "x12.acme.urll" in where
