"""The CDC SOAP client against the stand-in on a real loopback socket: operations, faults,
resets, TLS verification."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers_iis import FACILITY, V2CTX, flu_shot, resources_of, running_standin
from mafhir_iis import envelope
from mafhir_iis.ack import outcome, read_iis_ack
from mafhir_iis.soap import Credentials, SoapClient
from mafhir_iis.standin import StandinIIS
from mafhir_iis.vxu_out import VxuSettings, vxu_v04

from mafhir.errors import PermanentError, TransientError
from mafhir.hl7v2 import parse
from mafhir.retry import RetryPolicy

GOOD = Credentials("clinic-user", "s3cret-pw")
SETTINGS = VxuSettings(facility_id=FACILITY, receiving_application="WIR",
                       receiving_facility="WIR")


@pytest.fixture(name="standin")
def _standin() -> Iterator[StandinIIS]:
    with running_standin() as running:
        yield running


def client(standin: StandinIIS, credentials: Credentials = GOOD, facility: str = FACILITY,
           attempts: int = 3) -> SoapClient:
    return SoapClient(standin.soap_url, credentials, facility, timeout=5,
                      retry=RetryPolicy(max_attempts=attempts, base=0.01, cap=0.05))


def vxu() -> str:
    return vxu_v04(resources_of(flu_shot()), V2CTX, SETTINGS)


def test_connectivity_test_echoes(standin):
    assert client(standin).connectivity_test("are you there?") == "are you there?"


def test_submit_returns_the_ack_and_the_dose_is_kept(standin):
    text = vxu()
    answer = client(standin).submit(text)
    ack = read_iis_ack(answer)
    assert ack.acked_id == parse(text).control_id
    delivered = outcome(ack, parse(text).control_id)
    assert delivered["ack"] == "AE"  # a child with no NK1: a warning, the dose kept
    assert delivered["warnings"] == [
        "NK1[1]: NK1: the responsible person of a minor is missing [101 Required field "
        "missing; application error 7 Required data missing]"]
    [dose] = standin.registry.doses()
    assert (dose.filler_id, dose.cvx, dose.lot, dose.mvx) == ("imm-2025-001", "140",
                                                              "UT8531AA", "PMC")


def test_segment_separators_survive_the_xml_round_trip(standin):
    text = vxu()
    client(standin).submit(text)
    # the stand-in read the exact message: its receipt names the MSH-10 we sent
    assert [r.control_id for r in standin.registry.receipts] == [parse(text).control_id]
    assert b"&#13;" in envelope.request("submitSingleMessage", [("hl7Message", text)])


@pytest.mark.parametrize(("credentials", "facility"), [
    (Credentials("clinic-user", "wrong"), FACILITY),
    (Credentials("someone", "s3cret-pw"), FACILITY),
    (GOOD, "OTHER-CLINIC")])
def test_security_fault_is_permanent_and_not_retried(standin, credentials, facility):
    with pytest.raises(PermanentError) as info:
        client(standin, credentials, facility).submit(vxu())
    assert info.value.code == "security"
    assert "SecurityFault" in str(info.value)
    assert "wrong" not in str(info.value) and "s3cret" not in str(info.value)
    assert standin.soap_requests == 1  # not retried
    assert standin.registry.doses() == []


def test_message_too_large_fault_is_permanent():
    with running_standin(max_bytes=200) as small:
        with pytest.raises(PermanentError) as info:
            client(small).submit(vxu())
        assert info.value.code == "too-long" and "MessageTooLargeFault" in str(info.value)
        assert small.soap_requests == 1


def test_unknown_fault_is_transient_and_retried_until_delivered(standin):
    standin.fail_next("unknown-fault", times=2)
    answer = client(standin).submit(vxu())
    assert read_iis_ack(answer).code in ("AA", "AE")
    assert standin.soap_requests == 3
    with pytest.raises(TransientError):  # one try only: the fault itself is transient
        standin.fail_next("unknown-fault")
        client(standin, attempts=1).submit(vxu())


def test_connection_reset_is_retried_then_delivered_once(standin):
    standin.fail_next("reset")
    answer = client(standin).submit(vxu())
    assert read_iis_ack(answer).acked_id == parse(vxu()).control_id
    assert standin.soap_requests == 2
    assert len(standin.registry.doses()) == 1


def test_http_503_and_a_closed_port_are_transient(standin):
    standin.fail_next("http503", times=5)
    with pytest.raises(TransientError) as info:
        client(standin, attempts=2).submit(vxu())
    assert info.value.status == 503
    closed = SoapClient("http://127.0.0.1:9/iis", GOOD, FACILITY, timeout=2,
                        retry=RetryPolicy(max_attempts=1))
    with pytest.raises(TransientError):
        closed.connectivity_test()


def test_unsupported_operation_and_a_doctype_are_refused(standin):
    body = envelope.request("submitBatch", [("hl7Message", "x")])
    reply = requests.post(standin.soap_url, data=body, timeout=5,
                          headers={"Content-Type": envelope.content_type("submitBatch")})
    fault = envelope.read(reply.content)
    assert reply.status_code == 400 and isinstance(fault, envelope.Fault)
    assert fault.name == "UnsupportedOperationFault" and fault.sender
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(envelope.EnvelopeError):
        envelope.read(evil)
    reply = requests.post(standin.soap_url, data=evil, timeout=5)
    assert reply.status_code == 400


def test_credentials_come_from_the_environment_and_never_show(monkeypatch):
    monkeypatch.setenv("IIS_X_USER", "u1")
    monkeypatch.delenv("IIS_X_PASSWORD", raising=False)
    with pytest.raises(Exception) as info:
        Credentials.from_env("IIS_X_USER", "IIS_X_PASSWORD")
    assert [p.location for p in info.value.problems] == ["IIS_X_PASSWORD"]
    monkeypatch.setenv("IIS_X_PASSWORD", "pw-secret")
    creds = Credentials.from_env("IIS_X_USER", "IIS_X_PASSWORD")
    assert "pw-secret" not in repr(creds) and "u1" not in repr(creds)
    assert "pw-secret" not in repr(SoapClient("https://iis.example.gov/x", creds, "F"))


@pytest.fixture(name="certificate", scope="module")
def _certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iis stand-in")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    d: Path = tmp_path_factory.mktemp("iis-tls")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                  serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return str(d / "cert.pem"), str(d / "key.pem")


def test_tls_is_verified_unless_the_ca_is_given(certificate):
    with running_standin(tls=certificate) as https:
        assert https.soap_url.startswith("https://")
        with pytest.raises(PermanentError) as info:
            client(https).submit(vxu())
        assert info.value.code == "security" and "TLS verification" in str(info.value)
        assert https.registry.doses() == []
        trusted = SoapClient(https.soap_url, GOOD, FACILITY, timeout=5, verify=certificate[0])
        assert read_iis_ack(trusted.submit(vxu())).code in ("AA", "AE")
        assert len(https.registry.doses()) == 1
