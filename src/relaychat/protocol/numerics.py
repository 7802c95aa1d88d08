"""Every numeric reply relaychat sends or recognises: its code, its name and its text.

Sources: RFC 1459 §6, RFC 2812 §5, the Modern IRC documentation (modern.ircdocs.horse) and
IRCv3 for 417 ERR_INPUTTOOLONG. Handlers never write a numeric by hand: they call :func:`reply`.
The client library imports this module too, to recognise 001, 433 and the rest.
"""

from __future__ import annotations

from typing import NamedTuple

from relaychat.protocol.message import Message

__all__ = ["BY_CODE", "Numeric", "reply", "reply_bytes", "safe_param"]


class Numeric(NamedTuple):
    """A numeric reply.

    Attributes:
        code: the three digits on the wire.
        name: the conventional name (``ERR_NOSUCHNICK``).
        text: the trailing human-readable text, or ``None`` when the reply has none fixed.
    """

    code: str
    name: str
    text: str | None


def _n(code: str, name: str, text: str | None = None) -> Numeric:
    num = Numeric(code, name, text)
    BY_CODE[code] = num
    return num


#: Every numeric by code, filled as the constants below are defined.
BY_CODE: dict[str, Numeric] = {}

# Registration and the welcome burst (RFC 2812 §5.1)
RPL_WELCOME = _n("001", "RPL_WELCOME")
RPL_YOURHOST = _n("002", "RPL_YOURHOST")
RPL_CREATED = _n("003", "RPL_CREATED")
RPL_MYINFO = _n("004", "RPL_MYINFO")
RPL_ISUPPORT = _n("005", "RPL_ISUPPORT", "are supported by this server")

# Replies to commands
RPL_UMODEIS = _n("221", "RPL_UMODEIS")
RPL_LUSERCLIENT = _n("251", "RPL_LUSERCLIENT")
RPL_LUSEROP = _n("252", "RPL_LUSEROP", "operator(s) online")
RPL_LUSERUNKNOWN = _n("253", "RPL_LUSERUNKNOWN", "unknown connection(s)")
RPL_LUSERCHANNELS = _n("254", "RPL_LUSERCHANNELS", "channels formed")
RPL_LUSERME = _n("255", "RPL_LUSERME")
RPL_LOCALUSERS = _n("265", "RPL_LOCALUSERS")
RPL_GLOBALUSERS = _n("266", "RPL_GLOBALUSERS")
RPL_AWAY = _n("301", "RPL_AWAY")
RPL_USERHOST = _n("302", "RPL_USERHOST")
RPL_ISON = _n("303", "RPL_ISON")
RPL_UNAWAY = _n("305", "RPL_UNAWAY", "You are no longer marked as being away")
RPL_NOWAWAY = _n("306", "RPL_NOWAWAY", "You have been marked as being away")
RPL_WHOISUSER = _n("311", "RPL_WHOISUSER")
RPL_WHOISSERVER = _n("312", "RPL_WHOISSERVER")
RPL_WHOISOPERATOR = _n("313", "RPL_WHOISOPERATOR", "is an IRC operator")
RPL_WHOWASUSER = _n("314", "RPL_WHOWASUSER")
RPL_ENDOFWHO = _n("315", "RPL_ENDOFWHO", "End of WHO list")
RPL_WHOISIDLE = _n("317", "RPL_WHOISIDLE", "seconds idle, signon time")
RPL_ENDOFWHOIS = _n("318", "RPL_ENDOFWHOIS", "End of /WHOIS list")
RPL_WHOISCHANNELS = _n("319", "RPL_WHOISCHANNELS")
RPL_LISTSTART = _n("321", "RPL_LISTSTART", "Users  Name")
RPL_LIST = _n("322", "RPL_LIST")
RPL_LISTEND = _n("323", "RPL_LISTEND", "End of /LIST")
RPL_CHANNELMODEIS = _n("324", "RPL_CHANNELMODEIS")
RPL_CREATIONTIME = _n("329", "RPL_CREATIONTIME")
RPL_NOTOPIC = _n("331", "RPL_NOTOPIC", "No topic is set")
RPL_TOPIC = _n("332", "RPL_TOPIC")
RPL_TOPICWHOTIME = _n("333", "RPL_TOPICWHOTIME")
RPL_INVITING = _n("341", "RPL_INVITING")
RPL_VERSION = _n("351", "RPL_VERSION")
RPL_WHOREPLY = _n("352", "RPL_WHOREPLY")
RPL_NAMREPLY = _n("353", "RPL_NAMREPLY")
RPL_ENDOFNAMES = _n("366", "RPL_ENDOFNAMES", "End of /NAMES list")
RPL_BANLIST = _n("367", "RPL_BANLIST")
RPL_ENDOFBANLIST = _n("368", "RPL_ENDOFBANLIST", "End of channel ban list")
RPL_ENDOFWHOWAS = _n("369", "RPL_ENDOFWHOWAS", "End of WHOWAS")
RPL_MOTD = _n("372", "RPL_MOTD")
RPL_MOTDSTART = _n("375", "RPL_MOTDSTART")
RPL_ENDOFMOTD = _n("376", "RPL_ENDOFMOTD", "End of /MOTD command.")
RPL_YOUREOPER = _n("381", "RPL_YOUREOPER", "You are now an IRC operator")
RPL_TIME = _n("391", "RPL_TIME")

# Errors (RFC 2812 §5.2)
ERR_NOSUCHNICK = _n("401", "ERR_NOSUCHNICK", "No such nick/channel")
ERR_NOSUCHSERVER = _n("402", "ERR_NOSUCHSERVER", "No such server")
ERR_NOSUCHCHANNEL = _n("403", "ERR_NOSUCHCHANNEL", "No such channel")
ERR_CANNOTSENDTOCHAN = _n("404", "ERR_CANNOTSENDTOCHAN", "Cannot send to channel")
ERR_TOOMANYCHANNELS = _n("405", "ERR_TOOMANYCHANNELS", "You have joined too many channels")
ERR_WASNOSUCHNICK = _n("406", "ERR_WASNOSUCHNICK", "There was no such nickname")
ERR_TOOMANYTARGETS = _n("407", "ERR_TOOMANYTARGETS", "Too many targets")
ERR_NOORIGIN = _n("409", "ERR_NOORIGIN", "No origin specified")
ERR_NORECIPIENT = _n("411", "ERR_NORECIPIENT")
ERR_NOTEXTTOSEND = _n("412", "ERR_NOTEXTTOSEND", "No text to send")
ERR_INPUTTOOLONG = _n("417", "ERR_INPUTTOOLONG", "Input line was too long")
ERR_UNKNOWNCOMMAND = _n("421", "ERR_UNKNOWNCOMMAND", "Unknown command")
ERR_NOMOTD = _n("422", "ERR_NOMOTD", "MOTD File is missing")
ERR_NONICKNAMEGIVEN = _n("431", "ERR_NONICKNAMEGIVEN", "No nickname given")
ERR_ERRONEUSNICKNAME = _n("432", "ERR_ERRONEUSNICKNAME", "Erroneous nickname")
ERR_NICKNAMEINUSE = _n("433", "ERR_NICKNAMEINUSE", "Nickname is already in use")
ERR_USERNOTINCHANNEL = _n("441", "ERR_USERNOTINCHANNEL", "They aren't on that channel")
ERR_NOTONCHANNEL = _n("442", "ERR_NOTONCHANNEL", "You're not on that channel")
ERR_USERONCHANNEL = _n("443", "ERR_USERONCHANNEL", "is already on channel")
ERR_NOTREGISTERED = _n("451", "ERR_NOTREGISTERED", "You have not registered")
ERR_NEEDMOREPARAMS = _n("461", "ERR_NEEDMOREPARAMS", "Not enough parameters")
ERR_ALREADYREGISTERED = _n("462", "ERR_ALREADYREGISTERED", "You may not reregister")
ERR_PASSWDMISMATCH = _n("464", "ERR_PASSWDMISMATCH", "Password incorrect")
ERR_CHANNELISFULL = _n("471", "ERR_CHANNELISFULL", "Cannot join channel (+l)")
ERR_UNKNOWNMODE = _n("472", "ERR_UNKNOWNMODE", "is unknown mode char to me")
ERR_INVITEONLYCHAN = _n("473", "ERR_INVITEONLYCHAN", "Cannot join channel (+i)")
ERR_BANNEDFROMCHAN = _n("474", "ERR_BANNEDFROMCHAN", "Cannot join channel (+b)")
ERR_BADCHANNELKEY = _n("475", "ERR_BADCHANNELKEY", "Cannot join channel (+k)")
ERR_BADCHANMASK = _n("476", "ERR_BADCHANMASK", "Bad Channel Mask")
ERR_NOCHANMODES = _n("477", "ERR_NOCHANMODES", "Channel doesn't support modes")
ERR_BANLISTFULL = _n("478", "ERR_BANLISTFULL", "Channel list is full")
ERR_NOPRIVILEGES = _n("481", "ERR_NOPRIVILEGES", "Permission Denied- You're not an IRC operator")
ERR_CHANOPRIVSNEEDED = _n("482", "ERR_CHANOPRIVSNEEDED", "You're not channel operator")
ERR_CANTKILLSERVER = _n("483", "ERR_CANTKILLSERVER", "You can't kill a server!")
ERR_NOOPERHOST = _n("491", "ERR_NOOPERHOST", "No O-lines for your host")
ERR_UMODEUNKNOWNFLAG = _n("501", "ERR_UMODEUNKNOWNFLAG", "Unknown MODE flag")
ERR_USERSDONTMATCH = _n("502", "ERR_USERSDONTMATCH", "Cant change mode for other users")
ERR_INVALIDKEY = _n("525", "ERR_INVALIDKEY", "Key is not well-formed")
ERR_INVALIDMODEPARAM = _n("696", "ERR_INVALIDMODEPARAM")


def reply(
    server: str, target: str, numeric: Numeric, *params: str, text: str | None = None
) -> Message:
    """Build a numeric reply.

    Args:
        server: the server name, used as the source.
        target: the nick of the recipient (``*`` before it has one).
        numeric: one of the constants of this module.
        params: the middle parameters.
        text: the trailing text; defaults to the numeric's own text (none when it has none).

    Returns:
        The :class:`Message`, ready to serialise.
    """
    trailing = numeric.text if text is None else text
    middle = tuple(safe_param(p) for p in params)
    if trailing is None:
        return Message(numeric.code, (target, *middle), server)
    return Message(numeric.code, (target, *middle, trailing), server)


def reply_bytes(
    server: str, target: str, numeric: Numeric, *params: str, text: str | None = None
) -> bytes | None:
    """``reply(...).to_bytes()``, the same bytes, without building a :class:`Message`.

    Hot path: a registration sends some twenty numerics, and building, checking and serialising
    a Message for each cost three times as much (docs/benchmarks.md, W1). The middle parameters
    are made safe as :func:`reply` makes them; what only Message's checks would catch (CR, LF or
    NUL anywhere, an empty or spaced server name or target) returns ``None``, and the caller
    takes the :func:`reply` path, which refuses it as before.
    """
    trailing = numeric.text if text is None else text
    if params:
        line = f":{server} {numeric.code} {target} " + " ".join([safe_param(p) for p in params])
    else:
        line = f":{server} {numeric.code} {target}"
    if trailing is not None:
        # Message.serialize: the last parameter takes a colon only when it needs one.
        if not trailing or " " in trailing or trailing[0] == ":":
            line = f"{line} :{trailing}"
        else:
            line = f"{line} {trailing}"
    if (
        "\r" in line
        or "\n" in line
        or "\0" in line
        or not server
        or " " in server
        or not target
        or " " in target
        or target[0] == ":"
    ):
        return None
    return (line + "\r\n").encode("utf-8", "replace")


def safe_param(param: str) -> str:
    """``param`` when it can stand as a middle parameter, else ``*``.

    A client can send a parameter that could not be echoed in the middle of a reply (empty,
    holding a space, starting with ``:``; RFC 1459 §2.3.1), e.g. ``WHOIS :a b``. Every numeric
    goes through this, as Ergo's SafeErrorParam does, so no reply can fail to serialise.
    """
    if not param or param[0] == ":" or " " in param:
        return "*"
    return param


# Late additions, kept apart so the RFC order above stays readable.
ERR_UNKNOWNERROR = _n("400", "ERR_UNKNOWNERROR")
ERR_INVALIDCAPCMD = _n("410", "ERR_INVALIDCAPCMD", "Invalid CAP subcommand")
RPL_HELPSTART = _n("704", "RPL_HELPSTART")
RPL_HELPTXT = _n("705", "RPL_HELPTXT")
RPL_ENDOFHELP = _n("706", "RPL_ENDOFHELP")
ERR_HELPNOTFOUND = _n("524", "ERR_HELPNOTFOUND", "No help available on this topic")

# Accounts, SASL and client certificates (IRCv3 sasl-3.1: https://ircv3.net/specs/extensions/sasl-3.1;
# 276 and 330 as in the Modern IRC documentation).
RPL_WHOISCERTFP = _n("276", "RPL_WHOISCERTFP")
RPL_WHOISACCOUNT = _n("330", "RPL_WHOISACCOUNT", "is logged in as")
RPL_LOGGEDIN = _n("900", "RPL_LOGGEDIN")
RPL_LOGGEDOUT = _n("901", "RPL_LOGGEDOUT", "You are now logged out")
ERR_NICKLOCKED = _n("902", "ERR_NICKLOCKED", "You must use a nick assigned to you")
RPL_SASLSUCCESS = _n("903", "RPL_SASLSUCCESS", "SASL authentication successful")
ERR_SASLFAIL = _n("904", "ERR_SASLFAIL", "SASL authentication failed")
ERR_SASLTOOLONG = _n("905", "ERR_SASLTOOLONG", "SASL message too long")
ERR_SASLABORTED = _n("906", "ERR_SASLABORTED", "SASL authentication aborted")
ERR_SASLALREADY = _n("907", "ERR_SASLALREADY", "You have already authenticated using SASL")
RPL_SASLMECHS = _n("908", "RPL_SASLMECHS", "are available SASL mechanisms")

# The modern IRCv3 set (issue 11): MONITOR (https://ircv3.net/specs/extensions/monitor), WHOX
# (https://ircv3.net/specs/extensions/whox), bot mode (https://ircv3.net/specs/extensions/bot-mode),
# draft/metadata-2 (https://ircv3.net/specs/extensions/metadata), and INFO/LINKS as in the Modern
# IRC documentation.
RPL_WHOISBOT = _n("335", "RPL_WHOISBOT", "is a bot")
RPL_WHOSPCRPL = _n("354", "RPL_WHOSPCRPL")
RPL_LINKS = _n("364", "RPL_LINKS")
RPL_ENDOFLINKS = _n("365", "RPL_ENDOFLINKS", "End of /LINKS list")
RPL_INFO = _n("371", "RPL_INFO")
RPL_ENDOFINFO = _n("374", "RPL_ENDOFINFO", "End of /INFO list")
RPL_MONONLINE = _n("730", "RPL_MONONLINE")
RPL_MONOFFLINE = _n("731", "RPL_MONOFFLINE")
RPL_MONLIST = _n("732", "RPL_MONLIST")
RPL_ENDOFMONLIST = _n("733", "RPL_ENDOFMONLIST", "End of MONITOR list")
ERR_MONLISTFULL = _n("734", "ERR_MONLISTFULL", "Monitor list is full")
RPL_KEYVALUE = _n("761", "RPL_KEYVALUE")
RPL_KEYNOTSET = _n("766", "RPL_KEYNOTSET", "key not set")
RPL_METADATASUBOK = _n("770", "RPL_METADATASUBOK")
RPL_METADATAUNSUBOK = _n("771", "RPL_METADATAUNSUBOK")
RPL_METADATASUBS = _n("772", "RPL_METADATASUBS")
ERR_METADATASYNCLATER = _n("774", "ERR_METADATASYNCLATER")
# Operations: server notices, STATS, bans, REHASH (Modern IRC documentation; 728/729 as in
# Solanum/InspIRCd for the quiet list).
RPL_SNOMASK = _n("008", "RPL_SNOMASK")
RPL_STATSKLINE = _n("216", "RPL_STATSKLINE")
RPL_ENDOFSTATS = _n("219", "RPL_ENDOFSTATS", "End of /STATS report")
RPL_STATSDLINE = _n("225", "RPL_STATSDLINE")
RPL_STATSUPTIME = _n("242", "RPL_STATSUPTIME")
RPL_INVITELIST = _n("346", "RPL_INVITELIST")
RPL_ENDOFINVITELIST = _n("347", "RPL_ENDOFINVITELIST", "End of channel invite exception list")
RPL_EXCEPTLIST = _n("348", "RPL_EXCEPTLIST")
RPL_ENDOFEXCEPTLIST = _n("349", "RPL_ENDOFEXCEPTLIST", "End of channel exception list")
RPL_REHASHING = _n("382", "RPL_REHASHING", "Rehashing")
ERR_YOUREBANNEDCREEP = _n("465", "ERR_YOUREBANNEDCREEP", "You are banned from this server")
RPL_QUIETLIST = _n("728", "RPL_QUIETLIST")
RPL_ENDOFQUIETLIST = _n("729", "RPL_ENDOFQUIETLIST", "End of channel quiet list")
