"""Character sets: a message's bytes read as its MSH-18 declares, or refused.

HL7 table 0211 names the sets a sender may declare in MSH-18 (its first repetition is
the set of the whole message). Each one Python's codecs can read is decoded with that
codec, strictly: bytes not valid in the declared set are an :class:`InputError` naming
MSH-18, never a guess, because reading 8859/2 as Latin-1 turns "Łódź" into "£ód¼"
without anyone noticing. A value the table does not name, or one no codec here reads
(the ISO 2022 Japanese sets, CNS 11643), is refused the same way.

UTF-16 and UTF-32 are read from a file (``mafhir convert``) but refused by the MLLP
listener: their bytes can contain the end block (U+0D1C is ``1C 0D`` in UTF-16LE), so the
frame they arrive in cannot be trusted to be the whole message.

A message without MSH-18 is read as UTF-8 (ASCII, the standard's default, is a subset).
Bytes that are not UTF-8 fall back to ISO 8859-1, which many senders use without
declaring it, but only when no byte is in 0x80–0x9F: there Latin-1 has control
characters and the sender almost surely meant Windows-1252 (€, smart quotes), so the
message is refused rather than read wrong.

MSH-18's later repetitions name the sets ISO 2022 escape sequences switch to; the
Japanese ones (``~ISO IR87``, ``~ISO IR159``) make the message read as ISO-2022-JP, so
its escape sequences become the characters they encode instead of staying in the text.
(A VT or FS inside such text is not possible: ISO 2022 uses ESC, not those.)
"""

from __future__ import annotations

import codecs

from ..errors import InputError, Problem

__all__ = ["CODECS", "codec_for", "declared_charset", "declared_codec", "decode", "encode",
           "wide_charset"]

#: MSH-18 value (table 0211) → Python codec; None: named by the standard, no codec here.
CODECS: dict[str, str | None] = {
    "ASCII": "ascii",
    **{f"8859/{n}": f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15,
                                              16)},
    "UNICODE UTF-8": "utf-8",
    "UNICODE UTF-16": "utf-16",
    "UNICODE UTF-32": "utf-32",
    "UNICODE": None,  # v2.5's ISO/IEC 10646 without an encoding form: ambiguous
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc-kr",
    "BIG-5": "big5",
    "ISO IR6": "ascii",
    "ISO IR100": "iso8859-1",
    # the Japanese sets are switched to by ISO 2022 escape sequences (HL7 v2.5.1 §2.15.9;
    # MSH-18 ``~ISO IR87``: ASCII by default); iso2022_jp_2 reads all three
    "ISO IR14": "iso2022_jp_2",
    "ISO IR87": "iso2022_jp_2",
    "ISO IR159": "iso2022_jp_2",
    "CNS 11643-1992": None,
}

_ISO2022_JP = ("ISO IR14", "ISO IR87", "ISO IR159")
#: Byte order marks of the wide encodings, longest first (UTF-32 LE begins like UTF-16 LE).
_WIDE = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
         ("MSH".encode("utf-32-le"), "utf-32-le"), ("MSH".encode("utf-32-be"), "utf-32-be"),
         ("MSH".encode("utf-16-le"), "utf-16-le"), ("MSH".encode("utf-16-be"), "utf-16-be"))


def declared_charset(data: bytes) -> str:
    """MSH-18's first repetition as written (upper case, '' when absent), read from the
    bytes of an ASCII-compatible header; an ISO 2022 Japanese set in a later repetition
    is what the message must be read with, so that one is returned."""
    head = data.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if len(head) < 4 or not head.lstrip(b"\xef\xbb\xbf").startswith(b"MSH"):
        return ""
    head = head.lstrip(b"\xef\xbb\xbf")
    fields = head.split(head[3:4])
    if len(fields) <= 17:
        return ""
    rep = head[5:6] if len(head) > 5 else b"~"
    values = [v.decode("ascii", "replace").strip().upper()
              for v in (fields[17].split(rep) if rep else [fields[17]])]
    switched = [v for v in values[1:] if v in _ISO2022_JP]
    return switched[0] if switched and values[0] in ("", "ASCII", "ISO IR6") else values[0]


def codec_for(charset: str) -> str:
    """The codec of an MSH-18 value (InputError naming MSH-18 when there is none)."""
    if charset not in CODECS:
        raise InputError([Problem("MSH-18", f"character set {charset!r} is not one HL7 "
                                            "table 0211 names", "code-invalid")])
    codec = CODECS[charset]
    if codec is None:
        raise InputError([Problem("MSH-18", f"character set {charset!r} is not supported "
                                            "here", "not-supported")])
    return codec


def declared_codec(data: bytes) -> str:
    """The codec of the character set a message's bytes declare ('' when none is): what
    its ``\\Xhh\\`` escapes are bytes of. Called after :func:`decode` accepted them."""
    wide = wide_charset(data)
    if wide is not None:
        return wide
    charset = declared_charset(data)
    return codec_for(charset) if charset else ""


def wide_charset(data: bytes) -> str | None:
    """The UTF-16/32 codec a message is in (by its byte order mark or its "MSH"), else None."""
    for mark, codec in _WIDE:
        if data.startswith(mark):
            return codec
    return None


def decode(data: bytes) -> str:
    """A message's text, decoded as its MSH-18 declares (see the module's doc)."""
    wide = wide_charset(data)
    if wide is not None:  # UTF-16/32: the header itself is not ASCII bytes
        try:
            text = data.decode(wide)
        except UnicodeDecodeError:
            raise InputError([Problem("MSH-18", "the message is not valid UTF-16/UTF-32",
                                      "value")]) from None
        declared = declared_charset(text.lstrip("\ufeff").encode("utf-8", "replace"))
        if declared != f"UNICODE {wide[:6].upper()}":
            raise InputError([Problem("MSH-18", f"the message is {wide[:6].upper()} but "
                                                f"MSH-18 declares {declared or 'nothing'}",
                                      "value")])
        return text.lstrip("\ufeff")
    charset = declared_charset(data)
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
        if charset and charset not in ("UNICODE UTF-8", "ASCII"):
            raise InputError([Problem("MSH-18", f"the message starts with a UTF-8 byte "
                                                f"order mark but declares {charset!r}",
                                      "value")])
    if not charset:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if any(0x80 <= b <= 0x9F for b in data):
            raise InputError([Problem("MSH-18", "the message is neither UTF-8 nor ISO "
                                                "8859-1 (bytes 0x80–0x9F); declare its "
                                                "character set in MSH-18", "value")])
        return data.decode("iso8859-1")
    codec = codec_for(charset)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise InputError([Problem("MSH-18", f"byte {exc.start} of the message is not valid "
                                            f"in the declared character set {charset!r}",
                                  "value")]) from None


def encode(text: str, charset: str) -> bytes:
    """Text (an ACK) as bytes of ``charset`` (an MSH-18 value; '' or unsupported: UTF-8)."""
    codec = CODECS.get(charset.strip().upper()) if charset else None
    try:
        return text.encode(codec or "utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8")
