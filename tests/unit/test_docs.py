"""Checks against drift between the code and what the README and help say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from relaychat.config import SECTIONS, Config, scalar_fields
from relaychat.protocol import numerics
from relaychat.server.core import COMMANDS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    for f in scalar_fields(Config):
        assert f"`RELAYCHAT_{f.name.upper()}`" in README, f.name
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"`RELAYCHAT_{section.upper()}__{f.name.upper()}`" in README, f.name


def test_readme_lists_every_command() -> None:
    for name in COMMANDS:
        assert name in README, name


def test_every_command_has_a_syntax_line() -> None:
    for cmd in COMMANDS.values():
        assert cmd.help.split()[0] == cmd.name, cmd.help


def test_numerics_are_unique_and_three_digits() -> None:
    codes = [v.code for v in vars(numerics).values() if isinstance(v, numerics.Numeric)]
    assert len(codes) == len(set(codes))
    assert all(len(c) == 3 and c.isdigit() for c in codes)


def test_readme_bot_is_the_example_file() -> None:
    bot = (Path(__file__).resolve().parents[2] / "docs/examples/bot.py").read_text()
    assert "```python\n" + bot + "```" in README
    compile(bot, "bot.py", "exec")


def test_ircv3_doc_has_a_row_for_every_capability_and_token() -> None:
    """docs/ircv3.md: one table row per capability (those of optional parts included) and per
    ISUPPORT token. tests/integration/test_ircv3_modern.py checks the same against a running
    server's CAP LS and 005."""
    from relaychat.config import load_config
    from relaychat.server.caps import offered
    from relaychat.server.isupport import isupport_tokens

    doc = (Path(__file__).resolve().parents[2] / "docs/ircv3.md").read_text()
    config = load_config(environ={})
    extras = {"sasl": "", "draft/account-registration": "", "draft/chathistory": ""}
    names = [*offered(config, extras), *(t.split("=")[0] for t in isupport_tokens(config))]
    missing = [n for n in names if f"| `{n}` |" not in doc]
    assert not missing, missing
