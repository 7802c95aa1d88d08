"""relaychat: real-time chat over persistent TCP sockets, speaking IRC."""

__all__ = ["__version__"]

__version__ = "0.1.0"
