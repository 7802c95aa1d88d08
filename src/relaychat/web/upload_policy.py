"""What an upload is called, what type it is, and how it may be served: pure functions.

Rules:
1. A name from a request (``Content-Disposition`` ``filename``/``filename*``, or ``?name=``)
   becomes a plain file name: no path (``../../etc/passwd`` is ``passwd``), no control,
   format or invisible characters, no leading dots or spaces, at most :data:`MAX_NAME`
   characters with its extension kept; nothing usable left gives ``file``.
2. The type stored is the one the client declared (``Content-Type``), else guessed from the
   name's extension, lower-cased, with parameters dropped; a malformed one is
   ``application/octet-stream``. An image type must match the file's first bytes (PNG, JPEG,
   GIF, WebP signatures), else it is stored as ``application/octet-stream``.
3. Serving (:func:`served_as`) never lets the browser run anything from our origin: only PNG,
   JPEG, GIF and WebP are shown inline (never SVG); everything else is an attachment, and any
   type a browser could render as a document or run as a script (HTML, XML, SVG, JavaScript,
   CSS, ...) is sent as ``application/octet-stream``. The caller adds ``nosniff`` and a
   sandboxing CSP on top.
"""

from __future__ import annotations

import email.message
import email.utils
import mimetypes
import re
import unicodedata
import urllib.parse

__all__ = [
    "INLINE_TYPES",
    "MAX_NAME",
    "OCTET_STREAM",
    "checked_type",
    "content_disposition",
    "declared_type",
    "format_size",
    "name_from_disposition",
    "parse_range",
    "safe_name",
    "served_as",
    "sniff_image",
    "url_name",
]

MAX_NAME = 100
OCTET_STREAM = "application/octet-stream"

#: Shown inline (rule 3): raster images browsers decode without running anything.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})

#: Attachments that keep their type (rule 3); the rest become application/octet-stream.
ATTACHMENT_TYPES = frozenset(
    {
        "text/plain",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/x-7z-compressed",
        "application/json",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/flac",
        "video/mp4",
        "video/webm",
        "video/ogg",
    }
)

_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\Z")


def _allowed_char(ch: str) -> bool:
    if ch in "/\\":
        return False
    category = unicodedata.category(ch)
    # Cc control, Cf format (bidi overrides, zero-width), Cs surrogates, Co private, Cn unassigned,
    # Zl/Zp line and paragraph separators.
    return category not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def safe_name(raw: str | None) -> str:
    """``raw`` as a plain file name (rule 1)."""
    if not raw:
        return "file"
    text = unicodedata.normalize("NFC", raw)
    text = re.split(r"[/\\]", text)[-1]  # the last path component
    text = "".join(ch if _allowed_char(ch) else " " for ch in text)
    text = re.sub(r"\s+", " ", text).strip()
    text = text.lstrip(". ").rstrip(". ")
    if len(text) > MAX_NAME:
        stem, dot, ext = text.rpartition(".")
        if dot and 0 < len(ext) <= 16 and stem:
            text = stem[: MAX_NAME - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            text = text[:MAX_NAME].rstrip(". ")
    return text or "file"


def name_from_disposition(header: str | None) -> str | None:
    """The ``filename`` (or RFC 6266 ``filename*``) of a ``Content-Disposition`` value."""
    if not header:
        return None
    msg = email.message.Message()
    msg["content-disposition"] = header
    plain: str | None = None
    try:
        for key, value in msg.get_params(header="content-disposition") or []:
            if key.lower() != "filename":
                continue
            if isinstance(value, tuple):  # filename*= (RFC 5987): preferred (RFC 6266 §4.3)
                return email.utils.collapse_rfc2231_value(value)
            plain = plain if plain is not None else value
    except (ValueError, LookupError):  # a bad RFC 2231 charset or encoding
        return None
    return plain


def declared_type(content_type: str | None, name: str) -> str:
    """The type to store for a file called ``name`` (rule 2, before the image check)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not kind or kind == OCTET_STREAM:
        guessed, _ = mimetypes.guess_type(name, strict=False)
        kind = (guessed or OCTET_STREAM).lower()
    if kind == "image/jpg":
        kind = "image/jpeg"
    return kind if _TYPE.match(kind) else OCTET_STREAM


def sniff_image(head: bytes) -> str | None:
    """The image type ``head`` (a file's first bytes) starts like, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def checked_type(kind: str, head: bytes) -> str:
    """``kind``, unless it claims an image ``head`` is not (rule 2)."""
    if kind.startswith("image/"):
        return kind if sniff_image(head) == kind else OCTET_STREAM
    return kind


def served_as(kind: str) -> tuple[str, bool]:
    """How a stored file of type ``kind`` is sent (rule 3).

    Returns:
        ``(content_type, inline)``.
    """
    if kind in INLINE_TYPES:
        return kind, True
    if kind in ATTACHMENT_TYPES:
        return (kind + "; charset=utf-8" if kind == "text/plain" else kind), False
    return OCTET_STREAM, False


def content_disposition(name: str, inline: bool) -> str:
    """The ``Content-Disposition`` value: ``inline`` or ``attachment``, with the name (RFC 6266:
    an ASCII ``filename`` and, when the name is not plain ASCII, ``filename*``)."""
    kind = "inline" if inline else "attachment"
    ascii_name = "".join(
        ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_" for ch in name
    ).strip()
    value = f'{kind}; filename="{ascii_name or "file"}"'
    if ascii_name != name:
        value += "; filename*=UTF-8''" + urllib.parse.quote(name, safe="")
    return value


def format_size(n: int) -> str:
    """``n`` bytes for people: ``512 B``, ``3.0 KiB``, ``20.0 MiB``, ``1.0 GiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def url_name(name: str) -> str:
    """``name`` as the last segment of a URL (percent-encoded; no spaces, so a chat client
    sees where the link ends)."""
    return urllib.parse.quote(name, safe="")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` (``Range: bytes=...``) asks of a ``size``-byte file.

    Returns:
        ``(first, last)`` (inclusive), or ``None`` for the whole file (no header, another
        unit, several ranges, or a malformed one: RFC 9110 §14.2 lets a server ignore those).

    Raises:
        ValueError: the range is well formed but outside the file (answer 416).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not (first_text.isdigit() or not first_text) or not (last_text.isdigit() or not last_text):
        return None
    if not first_text:  # bytes=-N: the last N bytes
        if not last_text or int(last_text) == 0:
            raise ValueError("empty suffix range")
        return max(0, size - int(last_text)), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # malformed: ignored
    if first >= size:
        raise ValueError("range starts past the end")
    return first, min(last, size - 1)
