"""relaychat.tui: the full-screen terminal chat client (``relaychat chat``), built with Textual.

Built only on :mod:`relaychat.client`. Layers: :mod:`.model` (buffers and lines, pure),
:mod:`.editing` (input history and tab completion, pure), :mod:`.render` (lines as Rich text),
:mod:`.commands` (the slash commands, one table), :mod:`.app` (the Textual app, ``ChatApp``).
Only :mod:`.app` imports Textual, so importing the others (or this package) stays cheap.
"""

__all__: list[str] = []
