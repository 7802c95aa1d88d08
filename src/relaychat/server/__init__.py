"""The relaychat IRC server: a pure core (``core``, ``state``, ``commands``) and asyncio edges."""

__all__: list[str] = []
