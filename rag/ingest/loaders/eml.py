"""E-mail messages (.eml): From/To/Cc/Date/Subject, the body, then each readable attachment under its own heading.

Parsed with the standard library (`email`, `policy.default`). The body is the
text/plain part, else the text/html part through `rag.ingest.loaders.html`.
Attachments of supported types go back through `load_document`'s dispatch
(the `load_attachment` callable), nested messages included, up to
`MAX_DEPTH` levels and `MAX_ATTACHMENTS` per message; the others are listed
in `notes` with the reason they were left out.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.loaders.base import (
    MAX_TITLE_CHARS,
    SUPPORTED_SUFFIXES,
    LoadedDocument,
    format_size,
    short_cause,
)
from rag.ingest.loaders.encoding import normalise_text

MAX_DEPTH = 3  # a message attached to a message attached to a message
MAX_ATTACHMENTS = 50
_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_MAIL_HEADERS = {"from", "to", "cc", "date", "subject", "message-id", "mime-version", "received", "content-type",
                 "return-path", "sender", "reply-to", "delivered-to"}
_EXTENSIONS = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html", "text/csv": ".csv",
               "text/markdown": ".md", "application/pdf": ".pdf", "image/jpeg": ".jpg"}

LoadAttachment = Callable[[Path, bytes, int], LoadedDocument]


def load_eml(path: Path, data: bytes, *, load_attachment: LoadAttachment, depth: int = 0,
             max_bytes: int = 64 * 2**20) -> LoadedDocument:
    """Extract a message's headers, body and attachments; `load_attachment(path, bytes, depth)` reads one attachment."""
    import email
    from email import policy

    try:
        message = email.message_from_bytes(data, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is a safety net
        raise DocumentError(str(path), f"not a valid e-mail message ({short_cause(exc)})") from None
    if not _MAIL_HEADERS & {key.lower() for key in message}:
        raise DocumentError(str(path), "not a valid e-mail message (no mail headers)")
    header_lines = [f"{name}: {value}" for name in _HEADERS if (value := _header(message, name))]
    subject = _header(message, "Subject")
    body_part = _body_part(message)
    body = _body_text(path, body_part) if body_part is not None else ""
    sections, notes = _attachment_sections(path, message, body_part, load_attachment, depth, max_bytes)
    if not body.strip() and not sections:
        raise EmptyDocumentError(str(path), "no text in message" + (f" ({notes[0]})" if notes else ""))
    text = normalise_text("\n\n".join(["\n".join(header_lines), body.strip(), *sections]))
    return LoadedDocument(text=text, title=(subject or path.stem)[:MAX_TITLE_CHARS], url=None, notes=tuple(notes))


def _header(message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header policy.default cannot parse
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _body_part(message):
    try:
        return message.get_body(preferencelist=("plain", "html"))
    except Exception:  # malformed MIME structure
        return None


def _part_text(part) -> str:
    """A text part's content as str, whatever its declared charset."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except Exception:  # LookupError (unknown charset), decoding errors, ...
        pass
    payload = part.get_payload(decode=True) or b""
    for charset in (part.get_content_charset(), "utf-8", "cp1252"):
        if not charset:
            continue
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("latin-1")


def _body_text(path: Path, part) -> str:
    text = _part_text(part)
    if part.get_content_subtype() != "html":
        return text
    from rag.ingest.loaders.html import load_html

    try:
        return load_html(Path(f"{path}#body.html"), text).text
    except EmptyDocumentError:
        return ""


def _attachment_parts(part, body):
    """Leaf parts that are attachments (and attached messages, not descended into), in order."""
    if part is body:
        return
    if part.get_content_type() == "message/rfc822":
        yield part
        return
    if part.is_multipart():
        for sub in part.iter_parts():
            yield from _attachment_parts(sub, body)
        return
    disposition = part.get_content_disposition()
    if part.get_content_maintype() == "image" and disposition != "attachment" and part.get("Content-ID"):
        return  # a picture shown inside the HTML body (a logo, a signature)
    if disposition == "attachment" or part.get_filename():
        yield part


def _attachment_name(part, index: int) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # a malformed filename parameter
        name = ""
    name = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/")).rsplit("/", 1)[-1].strip()
    if name:
        return name[:200]
    ctype = part.get_content_type()
    return f"attachment-{index}{_EXTENSIONS.get(ctype) or mimetypes.guess_extension(ctype) or ''}"


def _attachment_bytes(part) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        return inner.as_bytes() if hasattr(inner, "as_bytes") else b""
    return part.get_payload(decode=True) or b""


def _attachment_sections(path: Path, message, body, load_attachment: LoadAttachment, depth: int,
                         max_bytes: int) -> tuple[list[str], list[str]]:
    """`## Attachment: name` sections for readable attachments, and a note for each one left out."""
    sections: list[str] = []
    notes: list[str] = []
    if not message.is_multipart():
        return sections, notes
    for index, part in enumerate(_attachment_parts(message, body), 1):
        name = _attachment_name(part, index)
        if index > MAX_ATTACHMENTS:
            notes.append(f"attachments after the first {MAX_ATTACHMENTS} were not read")
            break
        suffix = Path(name).suffix.lower()
        reason = None
        if suffix not in SUPPORTED_SUFFIXES:
            reason = f"unsupported file type {suffix}" if suffix else "unsupported file type (no extension)"
        elif suffix == ".eml" and depth + 1 > MAX_DEPTH:
            reason = f"messages nested more than {MAX_DEPTH} deep are not read"
        if reason is None:
            try:
                blob = _attachment_bytes(part)
            except Exception as exc:  # broken base64 / quoted-printable
                blob, reason = b"", f"cannot decode it ({short_cause(exc)})"
            if reason is None and len(blob) > max_bytes:
                reason = f"{format_size(len(blob))}, over the size limit"
        if reason is None:
            try:
                doc = load_attachment(Path(f"{path}/{name}"), blob, depth + 1)
            except DocumentError as exc:
                reason = exc.reason
            except Exception as exc:  # a loader bug on an attachment must not cost the message
                reason = short_cause(exc)
        if reason is not None:
            notes.append(f"attachment {name}: skipped ({reason})")
            continue
        sections.append(f"## Attachment: {name}\n\n{doc.text}")
        notes.extend(f"attachment {name}: {note}" for note in doc.notes)
    return sections, notes
