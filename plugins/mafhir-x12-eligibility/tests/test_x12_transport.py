"""CORE transport on loopback: envelopes both ways, TLS verified, passwords from the
environment, TA1/999 for broken envelopes, the connector's declared contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_x12 import bundle_of, coverage_task

from mafhir.errors import InputError, PermanentError
from mafhir.testing import check_contract, self_signed_certificate
from mafhir_x12_eligibility.acks import read_999_text, read_ta1
from mafhir_x12_eligibility.config import Partner
from mafhir_x12_eligibility.connector import X12Connector
from mafhir_x12_eligibility.core import (
    PAYLOAD_270,
    CoreMessage,
    build_mime,
    build_soap,
    parse_mime,
    parse_soap,
)
from mafhir_x12_eligibility.segments import parse_interchange
from mafhir_x12_eligibility.standin import Standin
from mafhir_x12_eligibility.transport import CoreClient

SUBSCRIBER_270 = "x12/270/linuxforhealth-x12/subscriber-health-benefit-check.270"


def test_envelopes_carry_every_core_field_both_ways():
    msg = CoreMessage(PAYLOAD_270, "ISA*00*…~]]>tail", "CLINIC01", "ACMECH",
                      username="clinic", password="pw<&>")
    soap = build_soap(msg)
    assert b"http://www.w3.org/2003/05/soap-envelope" in soap
    assert b"<CORERuleVersion>2.2.0</CORERuleVersion>" in soap
    assert b"<ProcessingMode>RealTime</ProcessingMode>" in soap
    back = parse_soap(soap)
    assert (back.payload, back.payload_id, back.username, back.password) == \
        (msg.payload, msg.payload_id, "clinic", "pw<&>")
    body, ctype = build_mime(msg)
    back = parse_mime(body, ctype)
    assert (back.payload_type, back.sender_id, back.receiver_id, back.rule_version,
            back.timestamp, back.password) == (PAYLOAD_270, "CLINIC01", "ACMECH", "2.2.0",
                                               msg.timestamp, "pw<&>")
    assert "pw" not in repr(msg) and "ISA" not in repr(msg)


def test_hostile_xml_is_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            b'<x>&b;</x>')
    with pytest.raises(InputError, match="not well-formed"):
        parse_soap(bomb)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "x12 stand-in")


@pytest.fixture
def tls_standin(certificate) -> Iterator[Standin]:
    with Standin(tls=certificate, username="clinic01", password="s3cret-pw") as server:
        yield server


def _partner(url: str, tmp_path: Path, **over) -> Partner:
    values = {"url": url, "sender_id": "CLINIC01", "receiver_id": "ACMECH",
              "provider_npi": "1234567893", "provider_name": "Maple", "timeout": 5.0,
              "max_attempts": 1, "control_db": str(tmp_path / "control.db"), **over}
    return Partner(**values)


def test_tls_is_verified_and_passwords_come_from_the_environment(tls_standin, certificate,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setenv("ACME_PW", "s3cret-pw")
    bundle = bundle_of(coverage_task("ACTIVE01"))
    untrusted = X12Connector("acme", _partner(tls_standin.url, tmp_path, auth="basic",
                                              username="clinic01", password_env="ACME_PW"))
    with pytest.raises(PermanentError) as err:
        untrusted.send(bundle)
    untrusted.close()
    assert err.value.code == "security" and tls_standin.requests == []
    for envelope in ("soap", "mime"):
        trusted = X12Connector("acme", _partner(
            tls_standin.url, tmp_path, auth="basic", username="clinic01",
            password_env="ACME_PW", verify=certificate[0], envelope=envelope))
        answer = trusted.send(bundle)
        trusted.close()
        assert answer["summary"]["active"] is True
    monkeypatch.setenv("ACME_PW", "n0t-the-pw")
    wrong = X12Connector("acme", _partner(tls_standin.url, tmp_path, auth="basic",
                                          username="clinic01", password_env="ACME_PW",
                                          verify=certificate[0]))
    with pytest.raises(PermanentError) as err:
        wrong.send(bundle)
    wrong.close()
    assert err.value.status == 401 and "UnAuthorized" in str(err.value)
    assert "n0t-the-pw" not in str(err.value)  # the password is never quoted


def test_a_broken_envelope_gets_a_ta1_and_a_270_without_subscriber_a_999(standin, corpus,
                                                                         tmp_path):
    client = CoreClient(_partner(standin.url, tmp_path))
    text = (corpus / SUBSCRIBER_270).read_text()
    try:
        bad_control = text.replace("IEA*1*000000907", "IEA*1*000000908")
        answer = client.exchange(bad_control)
        ta1 = read_ta1(parse_interchange(answer.payload).ta1[0])
        assert answer.payload_type == "X12_TA1_Response_00501X231A1"
        assert not ta1.accepted and ta1.acknowledges == "000000907"
        assert "001 The Interchange Control Number in the Header and Trailer Do Not Match" \
            in str(ta1)
        no_member = text.replace("NM1*IL*1*SMITH*ROBERT****MI*11122333301~",
                                 "NM1*IL*1*SMITH*ROBERT~")
        answer = client.exchange(no_member)
        ack = read_999_text(answer.payload)
        assert answer.payload_type == "X12_999_Response_005010X231A1"
        assert not ack.accepted and ack.code == "R"
        assert [p.message for p in ack.problems] == ["IK3 3 Required Segment Missing"]
    finally:
        client.close()


def test_corpus_999s_are_read(corpus):
    accepted = read_999_text((corpus / "x12/999/imsweb-x12-parser/x12_999_accepted.txt")
                             .read_text())
    assert accepted.accepted and accepted.code == "A" and accepted.problems == []
    rejected = read_999_text((corpus / "x12/999/imsweb-x12-parser/x12_999_rejected.txt")
                             .read_text())
    # by hand: IK3*NM*17**1 (NM at position 17: unrecognized segment id), IK5*R*5
    assert not rejected.accepted and rejected.code == "R"
    assert [(p.location, p.message) for p in rejected.problems] == \
        [("NM[17]", "IK3 1 Unrecognized segment ID")]


def test_the_connector_keeps_its_declared_contract(partner):
    connector = X12Connector("acme", partner)
    try:
        assert check_contract(connector) == []
        assert connector.capabilities == frozenset({"whole_bundles", "configure"})
    finally:
        connector.close()


def test_a_bundle_without_a_check_is_refused_not_delivered(partner, standin):
    task = coverage_task("ACTIVE01")
    del task["eligibility"]
    connector = X12Connector("acme", partner)
    try:
        with pytest.raises(PermanentError, match="no CoverageEligibilityRequest"):
            connector.send(bundle_of(task))
    finally:
        connector.close()
    assert standin.requests == []


def test_the_payers_card_is_recorded_and_identity_goes_to_review(partner, standin, corpus):
    import uscore

    connector = X12Connector("acme", partner)
    try:
        active = connector.send(bundle_of(coverage_task("ACTIVE01")))
        corrected = connector.send(bundle_of(coverage_task("CORRECT01")))
    finally:
        connector.close()
    # ACTIVE01's plan dates (DTP 346/347) are not on the card: a card update, recorded
    records = {r["type"]: r["body"] for r in active["records"]}
    card = records["Coverage"]
    assert card["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert card["subscriberId"] == "ACTIVE01"
    assert {"field": "period", "action": "update the card"} in active["summary"]["corrections"]
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(card, corpus, version) == []
    # CORRECT01: the payer has another member id and family name: to review, not applied
    assert [c for c in corrected["summary"]["corrections"]] == [
        {"field": "member_id", "action": "to review"}, {"field": "family", "action": "to review"}]
    assert "Coverage" not in {r["type"] for r in corrected["records"]}
