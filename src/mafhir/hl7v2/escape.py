"""HL7 v2 delimiters and escape sequences (v2.5.1 chapter 2.7), done by the standard.

Kept here rather than taken from python-hl7: its ``escape`` writes a code point above
0xFF as one over-long ``\\X..\\`` that its own ``unescape`` cannot read back, and its
``unescape`` logs the field text (patient data) at warning level. Here non-ASCII text
stays as UTF-8 (MSH-18 ``UNICODE UTF-8``), only delimiters and control characters are
escaped, and ``\\Xhh..\\`` is read as bytes of the message's declared character set
(MSH-18; with none declared, UTF-8, else Latin-1). Bytes not valid in the declared set
are kept as written, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT", "Separators", "escape", "unescape"]


@dataclass(frozen=True, slots=True)
class Separators:
    """The five delimiters of a message: segment terminator is always CR."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""  # v2.7+: the fifth MSH-2 character (``#``), kept when present
    #: The codec of the message's declared character set (MSH-18), for ``\Xhh\`` bytes;
    #: '' when none is declared (UTF-8, else Latin-1).
    codec: str = ""

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as written."""
        return (self.component + self.repetition + self.escape + self.subcomponent
                + self.truncation)


DEFAULT = Separators()


def escape(text: str, seps: Separators = DEFAULT) -> str:
    """``text`` safe to place in one field, component or subcomponent."""
    if not text:
        return text
    table = {
        seps.escape: f"{seps.escape}E{seps.escape}",
        seps.field: f"{seps.escape}F{seps.escape}",
        seps.component: f"{seps.escape}S{seps.escape}",
        seps.subcomponent: f"{seps.escape}T{seps.escape}",
        seps.repetition: f"{seps.escape}R{seps.escape}",
    }
    if seps.truncation:
        table[seps.truncation] = f"{seps.escape}P{seps.escape}"
    out = []
    for ch in text.replace("\r\n", "\n"):
        if ch in table:
            out.append(table[ch])
        elif ch in "\r\n":
            out.append(f"{seps.escape}.br{seps.escape}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"{seps.escape}X{ord(ch):02X}{seps.escape}")
        else:
            out.append(ch)
    return "".join(out)


def _hex(value: str, codec: str = "") -> str | None:
    """``\\Xhh..\\`` as text in ``codec``; None when it is not an even run of hex digits,
    or not valid in the declared set (the sequence is then kept as written)."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    if not raw:
        return None
    if codec:
        try:
            return raw.decode(codec)
        except (UnicodeDecodeError, LookupError):
            return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdefABCDEF" for ch in text)


def unescape(text: str, seps: Separators = DEFAULT) -> str:
    """The text an escaped value stands for; never raises.

    A sequence that is not valid (``\\XZZ\\``, ``\\X0\\``, an unknown letter) is kept
    as written, visibly, rather than dropped: losing characters silently is worse than
    showing the sender's mistake. Character-set switches (``\\C..\\``, ``\\M..\\``)
    and formatting hints (``\\H\\``, ``\\N\\``) carry no text and are dropped.
    Decoded control characters are returned as they are: the converter refuses them.
    """
    esc = seps.escape
    if not text or esc not in text:
        return text
    simple = {"F": seps.field, "S": seps.component, "T": seps.subcomponent,
              "R": seps.repetition, "E": esc, "P": seps.truncation or "#",
              ".br": "\n", ".sp": "\n", "H": "", "N": "", ".fi": "", ".nf": "", ".ce": "\n"}
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = text.find(esc, i + 1)
        if end < 0:  # a lone escape character: keep it as it is
            out.append(text[i:])
            break
        seq = text[i + 1:end]
        if seq in simple:
            out.append(simple[seq])
        elif seq[:1] == "X":
            decoded = _hex(seq[1:], seps.codec)
            out.append(text[i:end + 1] if decoded is None else decoded)
        elif seq[:3] in (".sp", ".in", ".ti", ".sk"):
            out.append("\n" if seq[:3] == ".sp" else " ")
        elif seq[:1] in ("C", "M") and len(seq) in (5, 7) and _is_hex(seq[1:]):
            pass  # a character-set switch: no text of its own
        else:  # not a sequence of the standard (\Zxx\ is locally defined): kept as written
            out.append(text[i:end + 1])
        i = end + 1
    return "".join(out)
