"""RPL_ISUPPORT (005) tokens, derived from the configuration and nothing else.

See https://modern.ircdocs.horse/#rplisupport-parameter. At most 13 tokens go in one 005 line.
"""

from __future__ import annotations

from relaychat.config import Config

__all__ = ["BOT_MODE", "CHANMODES", "PREFIX", "USER_MODES", "isupport_tokens"]

#: Channel modes by ISUPPORT class:
#: A (list), B (always a parameter), C (parameter when set), D (flag).
CHANMODES = ("beIq", "k", "l", "imnst")
PREFIX = "(ov)@+"
#: User modes: B (bot, IRCv3 bot-mode), i (invisible), o (operator), s (server notices, for
#: opers: server/audit.py), w (receives WALLOPS).
USER_MODES = "Biosw"
#: The bot user mode, announced as ``BOT=B`` (https://ircv3.net/specs/extensions/bot-mode).
BOT_MODE = "B"


def isupport_tokens(config: Config) -> list[str]:
    """Every 005 token for ``config``, in a stable order."""
    lim = config.limits
    tokens = [
        "AWAYLEN=%d" % lim.awaylen,
        "BOT=" + BOT_MODE,
        "CASEMAPPING=rfc1459",
        "CHANLIMIT=#:%d" % lim.chanlimit,
        "CHANMODES=" + ",".join(CHANMODES),
        "CHANNELLEN=%d" % lim.channellen,
        "CHANTYPES=#",
        "KICKLEN=%d" % lim.kicklen,
        # One bound for every list mode (server/chanlists.py).
        "MAXLIST=beIq:%d" % lim.maxbans,
        "EXCEPTS=e",
        "INVEX=I",
        "MAXTARGETS=%d" % lim.maxtargets,
        "MODES=%d" % lim.modes,
        "MONITOR=%d" % lim.monitor,
        "NETWORK=" + config.network,
        "NICKLEN=%d" % lim.nicklen,
        "PREFIX=" + PREFIX,
        "STATUSMSG=@+",
        # Every command that splits its target list with MAXTARGETS; WHOIS takes one nick.
        "TARGMAX=JOIN:,KICK:%d,LIST:%d,NAMES:%d,NOTICE:%d,PART:,PRIVMSG:%d,WHOIS:1"
        % ((lim.maxtargets,) * 5),
        "TOPICLEN=%d" % lim.topiclen,
        # https://ircv3.net/specs/extensions/utf8-only: lines that are not UTF-8 are refused.
        "UTF8ONLY",
        # https://ircv3.net/specs/extensions/whox: WHO <mask> %<fields>[,<token>] -> 354.
        "WHOX",
    ]
    if config.history.enabled:
        # IRCv3 chathistory: the most messages one request returns, and the references known.
        tokens += ["CHATHISTORY=%d" % config.history.query_limit, "MSGREFTYPES=msgid,timestamp"]
    return sorted(tokens)
