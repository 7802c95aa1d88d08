"""The browser client's files (``relaychat/web/static/``), served from memory at ``/``.

Rules:
1. Every file is read once, when the server starts, into a table keyed by URL path. A request
   is a lookup in that table and nothing else: no path from a request ever reaches the file
   system, so ``..``, encoded slashes and symlinks cannot lead out of the folder.
2. ``/`` and ``/dir/`` mean their ``index.html``. Unknown paths get 404.
3. Each file has its content type (``nosniff`` is set on every response) and an ETag; a
   matching ``If-None-Match`` gets 304. HTML is revalidated on every load (``no-cache``) so a
   new release shows at once; other files may be cached for :data:`ASSET_MAX_AGE` seconds.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from relaychat.web.http import Response

__all__ = ["ASSET_MAX_AGE", "StaticFile", "StaticFiles"]

ASSET_MAX_AGE = 600

#: Types the platform's table may lack or get wrong; anything else comes from ``mimetypes``.
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file as served: its bytes, type, ETag and Cache-Control."""

    body: bytes
    content_type: str
    etag: str
    cache_control: str


def _content_type(name: str) -> str:
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot >= 0 else ""
    if ext in TYPES:
        return TYPES[ext]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


class StaticFiles:
    """The table of rule 1.

    Args:
        root: the folder to serve (default: the package's ``web/static``).
    """

    def __init__(self, root: Traversable | None = None) -> None:
        if root is None:
            root = resources.files("relaychat.web").joinpath("static")
        self.files: dict[str, StaticFile] = {}
        if root.is_dir():
            self._load(root, "/")

    def _load(self, folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir():
                self._load(entry, f"{prefix}{name}/")
            elif entry.is_file():
                body = entry.read_bytes()
                ctype = _content_type(name)
                html = ctype.startswith("text/html")
                self.files[prefix + name] = StaticFile(
                    body=body,
                    content_type=ctype,
                    etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
                    cache_control="no-cache" if html else f"public, max-age={ASSET_MAX_AGE}",
                )

    def lookup(self, path: str) -> StaticFile | None:
        """The file for URL ``path`` (rule 2), or ``None``."""
        if path.endswith("/"):
            path += "index.html"
        return self.files.get(path)

    def serve(self, method: str, path: str, if_none_match: str | None) -> Response:
        """The answer to ``GET``/``HEAD`` ``path`` (404, 405, 304 or the file)."""
        found = self.lookup(path)
        if found is None:
            return Response.text(404, "Not found")
        if method not in ("GET", "HEAD"):
            return Response.text(405, "Method not allowed", headers=(("Allow", "GET, HEAD"),))
        headers = (("ETag", found.etag), ("Cache-Control", found.cache_control))
        if if_none_match is not None and found.etag in (
            t.strip() for t in if_none_match.split(",")
        ):
            return Response(304, b"", found.content_type, headers)
        return Response(200, found.body, found.content_type, headers)
