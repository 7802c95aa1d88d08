"""The HTTP port: IRC over WebSocket, the browser client's files, metrics, health, webhooks.

One listener (``http.port``) carries it all; see ``app.py`` for the routes, ``http.py`` for the
HTTP/1.1 edge (``h11``), ``websocket.py`` for IRC over WebSocket (``websockets``' sans-I/O
protocol, lines fed to the same core as TCP), ``metrics.py``, ``health.py`` and ``hooks.py``.
"""

from relaychat.web.app import WebApp, WebHost

__all__ = ["WebApp", "WebHost"]
