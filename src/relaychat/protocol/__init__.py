"""The IRC wire protocol, pure: no sockets, no event loop. Shared by the server and the client."""

from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import Message, decode_line, parse, parse_bytes

__all__ = ["LineBuffer", "Message", "Overlong", "decode_line", "irc_lower", "parse", "parse_bytes"]
