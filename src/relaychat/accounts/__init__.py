"""Built-in accounts: registration, SASL login and nick protection, with no services daemon.

- ``store.py``    the SQLite account store (``accounts.db`` under the data directory)
- ``scram.py``    SCRAM-SHA-256, the server side (RFC 5802 / RFC 7677), pure
- ``sasl.py``     AUTHENTICATE chunking and the PLAIN message, pure
- ``worker.py``   where argon2 hashing runs, off the core's thread
- ``service.py``  the accounts attached to a core: login, per-connection state, nick protection

The IRC commands (AUTHENTICATE, REGISTER, VERIFY, CERT) are in ``server/commands/accounts.py``.
"""

__all__: list[str] = []
