"""Bytes to text: BOM and charset detection, decoding, binary detection, and text normalisation."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from rag.core.errors import UnsupportedFileError

# Control characters we drop: C0 except \t and \n, DEL, C1, and stray BOM / zero-width no-break spaces.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_BINARY_SAMPLE_CHARS = 65536
_BINARY_CONTROL_RATIO = 0.05


def decode_text(path: Path, data: bytes, *, html: bool = False) -> str:
    """Decode the bytes of a text file, or raise `UnsupportedFileError` if they look binary."""
    text = _decode_with_bom(data)
    if text is None:
        # NUL bytes never occur in real 8-bit or UTF-8 text; without a UTF-16 BOM they mean binary.
        if b"\x00" in data:
            raise UnsupportedFileError(str(path), "binary file, not text")
        text = _decode_without_bom(data, html=html)
    if _looks_binary(text):
        raise UnsupportedFileError(str(path), "binary file, not text")
    return text


def _decode_with_bom(data: bytes) -> str | None:
    """Decode text that starts with a Unicode byte-order mark, else return None."""
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    return None


def _decode_without_bom(data: bytes, *, html: bool) -> str:
    """Decode BOM-less bytes: UTF-8, then a declared HTML charset, then a detected one, then cp1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if html:
        declared = _declared_html_charset(data)
        if declared:
            try:
                return data.decode(declared)
            except (LookupError, UnicodeDecodeError):
                pass
    detected = _detect_encoding(data)
    if detected:
        try:
            return data.decode(detected)
        except (LookupError, UnicodeDecodeError):
            pass
    # cp1252 leaves five bytes undefined; latin-1 maps every byte, so this never fails.
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _declared_html_charset(data: bytes) -> str | None:
    """The charset named by a <meta> tag near the top of an HTML file, if any."""
    match = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", data[:4096], re.IGNORECASE)
    return match.group(1).decode("ascii", errors="ignore") if match else None


def _detect_encoding(data: bytes) -> str | None:
    """Guess a legacy encoding with charset_normalizer, preferring cp1252 whenever it is plausible."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    try:
        matches = list(from_bytes(data))
    except Exception:  # a detector bug must not stop ingestion; we fall back to cp1252
        return None
    if not matches:
        return None
    # On short Western text the detector often ranks exotic code pages (cp1006, cp1250) first even
    # though cp1252 decodes just as cleanly; cp1252 is by far the likelier source, so prefer it.
    western = {"cp1252", "latin_1", "iso8859_1", "iso8859_15"}
    if any(western & set(match.could_be_from_charset) for match in matches):
        return "cp1252"
    return matches[0].encoding


def _looks_binary(text: str) -> bool:
    """True when a decoded sample is dominated by control or replacement characters."""
    sample = text[:_BINARY_SAMPLE_CHARS]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    bad = sum(1 for ch in sample if (ch < " " and ch not in "\t\n\r\f\v") or ch == "\ufffd" or "\x7f" <= ch <= "\x9f")
    return bad / len(sample) > _BINARY_CONTROL_RATIO


def normalise_text(text: str) -> str:
    """Normalise line endings and whitespace and drop control characters, keeping \\n and \\t.

    CRLF/CR become LF, form feeds and Unicode line separators become LF,
    trailing whitespace is stripped from every line, runs of 3+ blank lines
    collapse to 2, and leading/trailing blank space of the whole text is removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\f\v\x85\u2028\u2029]", "\n", text)
    text = _CONTROL_CHARS.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n").rstrip()
