"""The client reads what ``requests`` takes from the environment (proxies, ``NO_PROXY``) once,
when it is made, instead of on every request (issue 14) — and still honours it: a request
goes through the proxy the environment names, or straight to a host ``NO_PROXY`` lists."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from mafhir_fhir_rest.client import FhirClient


@contextmanager
def recording_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every GET with a small FHIR resource; yields its
    address and the request targets it received (absolute when it served as a proxy)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = json.dumps({"resourceType": "CapabilityStatement",
                               "fhirVersion": "4.0.1"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_requests_go_through_the_proxy_the_environment_names(monkeypatch):
    with recording_server() as (proxy, seen):
        for name in ("http_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy}")
        with FhirClient("http://fhir.example.invalid/fhir") as client:
            for _ in range(2):  # the second request too: read once, kept
                assert client.request("GET", "metadata").body["fhirVersion"] == "4.0.1"
    assert seen == ["http://fhir.example.invalid/fhir/metadata"] * 2


def test_a_host_in_no_proxy_is_reached_directly(monkeypatch):
    with recording_server() as (proxy, via_proxy), recording_server() as (direct, seen):
        for name in ("http_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with FhirClient(f"http://{direct}/fhir") as client:
            for _ in range(2):
                assert client.request("GET", "metadata").status == 200
    assert (seen, via_proxy) == (["/fhir/metadata"] * 2, [])


def test_an_explicit_verify_is_kept_over_the_environments_bundle(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with FhirClient("https://fhir.example.invalid/fhir") as default, \
            FhirClient("https://fhir.example.invalid/fhir", verify=False) as insecure:
        # the environment's bundle never replaces plain True (test_fhir_rest_tls has why)
        assert default._verify() == str(requests.utils.DEFAULT_CA_BUNDLE_PATH)
        assert default._verify() != str(bundle)
        assert insecure._verify() is False
