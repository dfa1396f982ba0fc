"""Client-certificate (mutual TLS) auth to a clearinghouse, against the real stand-in on
loopback with a TLS context that requires a client certificate. The certificates are made
here with ``cryptography``: a server certificate, a client CA and a client certificate it
signs (clientAuth), and a stranger's client certificate signed by another CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers_x12 import bundle_of, coverage_task

from mafhir.errors import InputError, MafhirError
from mafhir_x12_eligibility.config import Partner
from mafhir_x12_eligibility.connector import X12Connector
from mafhir_x12_eligibility.standin import Standin


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(cn: str, key, issuer: tuple[x509.Name, object] | None, *, ca: bool,
          usage: x509.ObjectIdentifier | None = None, ip: str | None = None
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(cn), key)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def _write(folder: Path, stem: str, cert: x509.Certificate, key) -> tuple[str, str]:
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(_pem(key))
    return str(folder / f"{stem}.crt"), str(folder / f"{stem}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    folder = tmp_path_factory.mktemp("mtls")
    out: dict[str, tuple[str, str]] = {}
    server_key = ec.generate_private_key(ec.SECP256R1())
    out["server"] = _write(folder, "server", _cert("acme clearinghouse", server_key, None,
                                                   ca=True, ip="127.0.0.1"), server_key)
    for ca_name, client_cn, stem in (("clinic client CA", "clinic01", "client"),
                                     ("stranger CA", "stranger", "stranger")):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _cert(ca_name, ca_key, None, ca=True)
        out[f"{stem}-ca"] = _write(folder, f"{stem}-ca", ca_cert, ca_key)
        key = ec.generate_private_key(ec.SECP256R1())
        out[stem] = _write(folder, stem, _cert(client_cn, key, (ca_cert.subject, ca_key),
                                               ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH),
                           key)
    # one file holding certificate and key, the other way a client_cert can be given
    combined = folder / "client-combined.pem"
    combined.write_bytes(Path(out["client"][0]).read_bytes() + Path(out["client"][1])
                         .read_bytes())
    out["combined"] = (str(combined), "")
    return out


@pytest.fixture
def mtls_standin(pki) -> Iterator[Standin]:
    with Standin(tls=pki["server"], client_ca=pki["client-ca"][0]) as server:
        yield server


def _partner(url: str, tmp_path: Path, pki, **over) -> Partner:
    values = {"url": url, "sender_id": "CLINIC01", "receiver_id": "ACMECH",
              "provider_npi": "1234567893", "provider_name": "Maple", "timeout": 5.0,
              "max_attempts": 1, "control_db": str(tmp_path / "control.db"),
              "verify": pki["server"][0], **over}
    return Partner(**values)


def _send(partner: Partner) -> dict:
    connector = X12Connector("acme", partner)
    try:
        return connector.send(bundle_of(coverage_task("ACTIVE01")))
    finally:
        connector.close()


@pytest.mark.parametrize("envelope", ["soap", "mime"])
def test_a_client_certificate_the_partner_trusts_gets_an_answer(mtls_standin, pki, tmp_path,
                                                                envelope):
    cert, key = pki["client"]
    answer = _send(_partner(mtls_standin.url, tmp_path, pki, auth="certificate",
                            client_cert=cert, client_key=key, envelope=envelope))
    assert answer["summary"]["active"] is True
    assert [(r["client"], r["status"]) for r in mtls_standin.requests] == [("clinic01", 200)]


def test_certificate_and_key_in_one_file(mtls_standin, pki, tmp_path):
    answer = _send(_partner(mtls_standin.url, tmp_path, pki, auth="certificate",
                            client_cert=pki["combined"][0]))
    assert answer["summary"]["active"] is True
    assert [r["client"] for r in mtls_standin.requests] == ["clinic01"]


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_no_or_an_untrusted_client_certificate_is_refused_before_any_request(
        mtls_standin, pki, tmp_path, who):
    over = {"auth": "none"} if who == "none" else {
        "auth": "certificate", "client_cert": pki["stranger"][0],
        "client_key": pki["stranger"][1]}
    with pytest.raises(MafhirError) as err:
        _send(_partner(mtls_standin.url, tmp_path, pki, **over))
    assert mtls_standin.requests == []  # nothing got past the handshake
    assert "ISA" not in str(err.value)  # the reason, never the payload
    # not retried (a certificate does not get better by waiting), and the message points
    # at our certificate as well as theirs
    assert (err.value.transient, err.value.code) == (False, "security")
    assert "client certificate" in str(err.value)


def test_certificate_auth_without_a_certificate_is_a_configuration_error(tmp_path, pki):
    with pytest.raises(InputError) as err:
        X12Connector("acme", _partner("https://127.0.0.1:9/core", tmp_path, pki,
                                      auth="certificate"))
    assert "client_cert" in err.value.problems[0].location
