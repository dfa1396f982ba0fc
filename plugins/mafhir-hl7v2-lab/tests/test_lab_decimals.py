"""Result numbers keep the lab's digits: ``13.40`` leaves mafhir as ``13.40``, not ``13.4``.

The expected text is written by hand from the message below; the JSON is read as text
(and with the standard library's ``json``, floats as Decimals), never through mafhir.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from click.testing import CliRunner
from helpers_hl7v2_lab import (
    clinic,
    registry_fixture,  # noqa: F401 - the fixture
    v2ctx,
)

from mafhir.cli.main import build_cli
from mafhir.connectors.dir import DirectoryConnector
from mafhir.hl7v2 import (
    ConvertHandler,
    MessageStore,
    MLLPClient,
    MLLPListener,
    Receiver,
    read_ack,
)

ORU = (
    "MSH|^~\\&|LABSYS|QUESTLAB|MAFHIR|CLINIC|20261128061500-0500||ORU^R01^ORU_R01|DEC-1|P|"
    "2.5.1\r"
    "PID|1||MS-1^^^X^MR||Doe^Jane||19610402|F\r"
    "OBR|1|ord-1^MAFHIR|ACC-1^QUESTLAB|58410-2^CBC panel^LN|||20261127092000-0500|||||||||||"
    "||||20261128061000-0500|||F\r"
    "OBX|1|NM|718-7^Hemoglobin^LN||13.40|g/dL^^UCUM|12.00-16.00|N|||F\r"
    "OBX|2|SN|2345-7^Glucose^LN||<^0.050|mg/dL^^UCUM||L|||F\r"
    "OBX|3|SN|5048-4^ANA titer^LN||^1^:^128.0|||A|||F\r"
    "OBX|4|SN|2093-3^Cholesterol^LN||^150.0^-^200.00|mg/dL^^UCUM||N|||F\r"
    "OBX|5|NM|789-8^Erythrocytes^LN||+.50|10*6/uL^^UCUM|4.20 to 5.40|L|||F\r"
    "OBX|6|SN|1751-7^Albumin^LN||>=10.|g/dL^^UCUM||H|||F\r"
)


def observations(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Observation"]


def test_convert_prints_every_digit(tmp_path, registry):
    source = tmp_path / "oru.hl7"
    source.write_bytes(ORU.encode())
    result = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", str(source),
                                              "--namespace", "X=urn:mafhir:clinic/mrn"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    # the JSON text itself, digit for digit (pretty-printed: `"value": 13.40`)
    for written in ("13.40", "12.00", "16.00", "0.050", "128.0", "150.0", "200.00", "0.50",
                    "4.20", "5.40"):
        assert re.search(rf'"value": {re.escape(written)}[,\n]', text), written
    assert '"value": 13.4,' not in text and '"value": 13.4\n' not in text
    assert re.search(r'"value": 10[,\n]', text)  # ">=10." is the number 10
    obs = observations(json.loads(text, parse_float=Decimal))
    hgb, glucose, ana, chol, rbc, albumin = obs
    assert str(hgb["valueQuantity"]["value"]) == "13.40"
    assert hgb["valueQuantity"]["code"] == "g/dL"
    low, high = hgb["referenceRange"][0]["low"], hgb["referenceRange"][0]["high"]
    assert (str(low["value"]), str(high["value"])) == ("12.00", "16.00")
    assert glucose["valueQuantity"]["comparator"] == "<"
    assert str(glucose["valueQuantity"]["value"]) == "0.050"
    assert [str(ana["valueRatio"][k]["value"]) for k in ("numerator", "denominator")] == \
        ["1", "128.0"]
    assert [str(chol["valueRange"][k]["value"]) for k in ("low", "high")] == \
        ["150.0", "200.00"]
    assert str(rbc["valueQuantity"]["value"]) == "0.50"
    assert [str(rbc["referenceRange"][0][k]["value"]) for k in ("low", "high")] == \
        ["4.20", "5.40"]
    assert albumin["valueQuantity"]["comparator"] == ">="
    # and the file validates as written (read back through mafhir validate)
    out = tmp_path / "b.json"
    out.write_text(text)
    checked = CliRunner().invoke(build_cli(), ["validate", str(out)])
    assert checked.exit_code == 0, checked.output


def test_the_listener_delivers_every_digit(tmp_path, registry):
    """Over MLLP to a folder: the delivered NDJSON holds the lab's text, zeros and all."""
    c = clinic()
    folder = DirectoryConnector(tmp_path / "out")
    handler = ConvertHandler(registry, v2ctx(c), folder.send)
    with MLLPListener("127.0.0.1", 0, Receiver(MessageStore(tmp_path / "s.db"), handler)) \
            as listener, MLLPClient(*listener.address) as client:
        assert read_ack(client.send(ORU.encode())).code == "AA"
    folder.close()  # writes the per-type NDJSON
    bundle_text = next((tmp_path / "out" / "bundles").glob("*.json")).read_text()
    assert re.search(r'"value": 13.40,', bundle_text)
    lines = (tmp_path / "out" / "Observation.ndjson").read_text().splitlines()
    assert len(lines) == 6
    assert '"valueQuantity":{"value":13.40,' in lines[0]
    assert '"low":{"value":12.00,' in lines[0] and '"high":{"value":16.00,' in lines[0]
    assert '"valueQuantity":{"value":0.050,"comparator":"<"' in lines[1]
    assert '"denominator":{"value":128.0}' in lines[2]
