"""Built-in accounts: registration, SASL login and nick protection, with no services daemon.

This package is pure and knows nothing of the server (the server uses it, never the reverse):

- ``store.py``         the SQLite account store (``accounts.db`` under the data directory)
- ``scram.py``         SCRAM-SHA-256, the server side (RFC 5802 / RFC 7677), pure
- ``sasl.py``          AUTHENTICATE chunking and the PLAIN message, pure
- ``verification.py``  e-mail verification codes and the operator's mail command
- ``worker.py``        where argon2 hashing runs, off the core's thread, fair across addresses

The accounts attached to a core (login, per-connection state, nick protection) are
``server/accounts.py``; the IRC commands are ``server/commands/sasl.py`` (AUTHENTICATE) and
``server/commands/accounts.py`` (REGISTER, VERIFY, CERT).
"""

__all__: list[str] = []
