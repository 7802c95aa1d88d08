"""``relaychat hooks add | list | remove``: manage incoming webhooks (``relaychat.web.hooks``).

The hooks live in the server's data directory, found as ``relaychat serve`` finds it
(``--data-dir``, ``--config``, ``RELAYCHAT_DATA_DIR``); a running server sees changes at once.
Failures print one line and exit with code 2 (1 for ``remove`` of a hook that does not exist).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from relaychat.config import load_config
from relaychat.errors import ConfigError
from relaychat.web.hooks import BOT_SUFFIX, HookError, HookStore

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Add the ``hooks`` subcommand to ``sub`` (the CLI's subparsers); it sets ``handler``."""
    p = sub.add_parser(
        "hooks",
        help="manage incoming webhooks (POST /hooks/<token> on the HTTP port)",
        description="Incoming webhooks post to a channel as a bot named <name>/hook: "
        'curl -d \'{"text": "deployed"}\' http://HOST:8080/hooks/TOKEN. The token is shown '
        "once, by add; only its hash is kept, in hooks.json in the data directory.",
    )
    p.add_argument("--config", metavar="FILE", help="the server's TOML configuration file")
    p.add_argument("--data-dir", metavar="DIR", help="the server's data directory")
    verbs = p.add_subparsers(dest="hooks_verb", metavar="VERB", required=True)
    add = verbs.add_parser("add", help="make a webhook and print its token (once)")
    add.add_argument("channel", help="the channel it posts to, e.g. '#deploys'")
    add.add_argument("--name", required=True, help="its bot's name, e.g. ci (nick ci/hook)")
    verbs.add_parser("list", help="list the webhooks (tokens are not shown: they are not kept)")
    rm = verbs.add_parser("remove", help="remove a webhook; its token stops working at once")
    rm.add_argument("name", help="the webhook's name")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(file=args.config, overrides={"data_dir": args.data_dir})
    except ConfigError as exc:
        print(f"relaychat: configuration error: {exc}", file=sys.stderr)
        return 2
    store = HookStore(config.data_path())
    try:
        if args.hooks_verb == "add":
            token = store.add(args.channel, args.name, time.time())
            web = config.http
            scheme = "https" if web.tls else "http"
            host = config.hosts()[0]
            host = "127.0.0.1" if host in ("*", "0.0.0.0") else host
            host = f"[{host}]" if ":" in host else host
            print(f"webhook {args.name} posts to {args.channel} as {args.name}{BOT_SUFFIX}")
            print(f"token (shown only now): {token}")
            print(f"url: {scheme}://{host}:{web.port or 8080}/hooks/{token}")
            return 0
        if args.hooks_verb == "list":
            hooks = store.hooks()
            if not hooks:
                print("no webhooks (add one with: relaychat hooks add '#channel' --name NAME)")
            for hook in hooks:
                made = time.strftime("%Y-%m-%d %H:%M", time.localtime(hook.created))
                print(f"{hook.name}\t{hook.channel}\tcreated {made}")
            return 0
        if store.remove(args.name):
            print(f"webhook {args.name} removed")
            return 0
        print(f"relaychat: no webhook called {args.name!r}", file=sys.stderr)
        return 1
    except HookError as exc:
        print(f"relaychat: {exc}", file=sys.stderr)
        return 2
