"""``/upload PATH``: put a file on the server's file host and paste its link in the conversation.

Rules:
1. The upload is :func:`relaychat.client.upload.upload`'s (the URL the server announces, a
   ``TOKEN GENERATE FILEHOST`` token or the SASL account); this module only says what happens.
2. The link goes to the buffer on screen when the command was typed (a channel or a private
   conversation), as an ordinary message everyone there sees; from the server buffer it is only
   shown, to paste where you like.
3. Progress is a line when the upload starts, one every :data:`PROGRESS_EVERY` seconds while it
   runs, and one when it ends (or the reason it failed, in the server's words).
"""

from __future__ import annotations

import time
from pathlib import Path

from relaychat.client.dccstate import format_rate, format_size
from relaychat.client.errors import UploadError
from relaychat.client.upload import upload
from relaychat.tui.commands import ChatUI, Usage, command, say
from relaychat.tui.model import BufferKind, Kind

__all__ = ["PROGRESS_EVERY"]

#: Seconds between two progress lines.
PROGRESS_EVERY = 2.0


@command(
    "upload",
    "<path>",
    "upload a file to the server and paste its link here (for everyone in the conversation)",
)
async def _upload(ui: ChatUI, args: str) -> None:
    raw = args.strip().strip('"').strip("'")
    if not raw:
        raise Usage("")
    path = Path(raw).expanduser()
    if not path.is_file():
        raise Usage(f"no such file: {path}")
    state = ui.state
    buf = state.current_buffer
    target = buf.name if buf.kind in (BufferKind.CHANNEL, BufferKind.QUERY) else None
    size = path.stat().st_size
    state.info(f"uploading {path.name} ({format_size(size)}) ...", buf)
    ui.redraw()
    started = time.monotonic()
    last = started

    def progress(sent: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if sent < total and now - last >= PROGRESS_EVERY:
            last = now
            rate = sent / (now - started) if now > started else 0.0
            share = 100 * sent // max(1, total)
            state.info(
                f"uploading {path.name}: {share}% ({format_size(sent)} of "
                f"{format_size(total)}, {format_rate(rate)})",
                buf,
            )
            ui.redraw()

    try:
        done = await upload(ui.client, path, progress=progress)
    except UploadError as exc:
        state.info(f"upload of {path.name} failed: {exc.reason}", buf, kind=Kind.ERROR)
        return
    took = f" in {done.seconds:.1f} s ({format_rate(done.rate)})" if done.seconds >= 1 else ""
    state.info(f"uploaded {done.name}, {format_size(done.size)}{took}: {done.url}", buf)
    if target is not None:
        await say(ui, target, done.url)
