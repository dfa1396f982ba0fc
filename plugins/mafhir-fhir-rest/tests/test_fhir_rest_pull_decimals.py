"""``mafhir pull`` writes each decimal as the server sent it (issue 12.8).

SEKMET itself keeps decimals as floats (a posted 13.40 comes back as 13.4 on the wire,
measured), so it cannot show the reader's part; a loopback server that answers as an
exact-decimal server does (HAPI, or any that stores the JSON text) serves the searchset.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from mafhir.cli.main import build_cli

# the decimals as text, the way an exact server sends them
VALUES = ["13.40", "0.1000000000000000055511151231257827", "100.000", "1234567890.123456789"]
SEARCHSET = ('{"resourceType":"Bundle","type":"searchset","entry":[{"resource":'
             '{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:x:mrn",'
             '"value":"M-1"}],"extension":[' + ",".join(
                 f'{{"url":"urn:x:ext-{i}","valueDecimal":{v}}}'
                 for i, v in enumerate(VALUES)) + "]}}]}").encode()


class _Exact(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(SEARCHSET)))
        self.end_headers()
        self.wfile.write(SEARCHSET)


@pytest.fixture
def exact_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exact)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    server.shutdown()
    server.server_close()
    thread.join()


def test_pull_writes_decimals_digit_for_digit(exact_server: str):
    result = CliRunner().invoke(build_cli(), ["pull", "--from", exact_server, "patient",
                                              "--patient", "M-1"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    (line,) = result.stdout_bytes.splitlines()
    # read independently, keeping the text of each number
    patient = json.loads(line, parse_float=Decimal)
    written = [str(e["valueDecimal"]) for e in patient["extension"]]
    assert written == VALUES  # before: 13.4, 0.1, 100.0, 1234567890.1234567
    for value in VALUES:
        assert f'"valueDecimal":{value}'.encode() in line
