"""Every 270 is checked by pyx12 (an independent, well-kept X12 validator) before it leaves.

pyx12 4.0.0 does **not** ship a 005010X279A1 map: its ``maps.xml`` lists only the 4010
eligibility maps (``270.4010.X092.A1.xml``; the 5010 X092 entry names a file that is not in
the package). The 5010 270 has the 4010 structure with a few changes, so the map used
here is derived from pyx12's own 4010 map, at run time, by these edits and no others:

* GS08 / the map id: ``004010X092A1`` → ``005010X279A1``;
* ST03 (element 1705, Implementation Convention Reference) added, required, the one code;
* 2100C and 2100D DTP01: the 5010 qualifier ``291`` (Plan) added to the codes;
* EQ01: the 5010 service types mafhir names (``codes.SERVICE_TYPES``, e.g. ``MH`` Mental
  Health, ``UC`` Urgent Care) added to the 4010 list.

The derived map lives in a folder of the process's own (the installed pyx12 is never
changed); everything else — envelopes (pyx12's 00501 control map), loops, segment order,
element types and lengths, code lists of the 4010 map — is pyx12's. What pyx12 rejects
is an error naming the segment and element from its 999 (IK3/IK4), never sent.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from mafhir.errors import PermanentError, Problem

from .codes import SERVICE_TYPES

__all__ = ["map_folder", "pyx12_problems", "validate_270"]

_LOCK = threading.Lock()
_FOLDER: Path | None = None
_DERIVED = "270.5010.X279.A1.xml"
_NEEDED = ("maps.xml", "x12.control.00501.xml", "codes.xml", "dataele.xml",
           "999.5010.xml", "999.5010X231.A1.xml")


def _derive(source: Path, target: Path) -> None:
    tree = ET.parse(source)
    root = tree.getroot()
    for node in root.iter():
        if node.text and "004010X092A1" in node.text:
            node.text = node.text.replace("004010X092A1", "005010X279A1")
        for key, value in list(node.attrib.items()):
            if "004010X092A1" in value:
                node.attrib[key] = value.replace("004010X092A1", "005010X279A1")
    st = next(s for s in root.iter("segment") if s.get("xid") == "ST")
    st03 = ET.SubElement(st, "element", {"xid": "ST03"})
    for tag, text in (("data_ele", "1705"),
                      ("name", "Implementation Convention Reference"),
                      ("usage", "R"), ("seq", "03")):
        ET.SubElement(st03, tag).text = text
    ET.SubElement(ET.SubElement(st03, "valid_codes"), "code").text = "005010X279A1"
    for loop in root.iter("loop"):
        if loop.get("xid") not in ("2100C", "2100D"):
            continue
        for seg in loop.findall("segment"):
            if seg.get("xid") != "DTP":
                continue
            codes = seg.find("element[@xid='DTP01']/valid_codes")
            if codes is not None and not any(c.text == "291" for c in codes):
                ET.SubElement(codes, "code").text = "291"
    for seg in root.iter("segment"):
        if seg.get("xid") != "EQ":
            continue
        codes = seg.find("element[@xid='EQ01']/valid_codes")
        if codes is not None:
            have = {c.text for c in codes}
            for code in SERVICE_TYPES:
                if code not in have:
                    ET.SubElement(codes, "code").text = code
    tree.write(target, encoding="utf-8", xml_declaration=True)


def map_folder() -> Path:
    """The folder of maps pyx12 reads: its own, plus the derived 005010X279A1 270 map."""
    global _FOLDER
    with _LOCK:
        if _FOLDER is not None and (_FOLDER / _DERIVED).exists():
            return _FOLDER
        import pyx12

        source = Path(pyx12.__file__).parent / "map"
        folder = Path(tempfile.mkdtemp(prefix="mafhir-pyx12-"))
        for name in _NEEDED:
            shutil.copy(source / name, folder / name)
        for xsd in source.glob("*.xsd"):
            shutil.copy(xsd, folder / xsd.name)
        _derive(source / "270.4010.X092.A1.xml", folder / _DERIVED)
        maps = (folder / "maps.xml").read_text()
        entry = f'<map vriic="005010X279A1" fic="HS" abbr="270">{_DERIVED}</map>'
        maps = maps.replace('<version icvn="00501">', f'<version icvn="00501">\n    {entry}',
                            1)
        (folder / "maps.xml").write_text(maps)
        _FOLDER = folder
        return folder


def pyx12_problems(text: str) -> list[Problem]:
    """What pyx12 finds wrong with ``text`` (none: valid), read from its 999."""
    import pyx12.params
    import pyx12.x12n_document

    from .acks import read_999_text

    folder = map_folder()
    params = pyx12.params.params()
    out = io.StringIO()
    logger = logging.getLogger("pyx12")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # pyx12 logs the errors it also writes to the 999
    try:
        ok = pyx12.x12n_document.x12n_document(params, io.StringIO(text), out, None,
                                               map_path=str(folder))
    finally:
        logger.setLevel(level)
    if ok:
        return []
    try:
        ack = read_999_text(out.getvalue())
    except Exception:  # pyx12 could not even write a 999: the envelope is broken
        return [Problem("ISA", "pyx12 could not read the interchange", "structure")]
    return list(ack.problems) or [Problem("", "pyx12 rejected the 270 (no IK3/IK4 given)",
                                          "invalid")]


def validate_270(text: str) -> None:
    """Raise when pyx12 rejects ``text`` against 005010X279A1 (nothing is sent then)."""
    problems = pyx12_problems(text)
    if problems:
        raise PermanentError("the 270 fails 005010X279A1 validation (pyx12): "
                             + "; ".join(str(p) for p in problems), code="invalid",
                             problems=problems)
