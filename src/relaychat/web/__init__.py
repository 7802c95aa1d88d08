"""The HTTP port: IRC over WebSocket, the browser client's files, metrics, health, webhooks.

One listener (``http.port``) carries it all; see ``app.py`` for the routes, ``http.py`` for the
HTTP/1.1 edge (``h11``), ``websocket.py`` for IRC over WebSocket (``websockets``' sans-I/O
protocol, lines fed to the same core as TCP), ``metrics.py``, ``health.py``, ``hooks.py`` and
``hooks_cli.py`` (``relaychat hooks``). Nothing is imported here, so the CLI can load the hooks
command without the HTTP stack.
"""

__all__: list[str] = []
