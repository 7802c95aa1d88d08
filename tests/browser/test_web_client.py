"""The built-in web client in a real browser (Chromium via playwright) against a real server.

Each test starts its own server; the browser is shared by the module (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from typing import Any

import pytest

from relaychat.server.listeners import Server
from relaychat.web.hooks import HookStore
from tests.browser.browser_support import (
    http_port,
    log_texts,
    open_page,
    say,
    start_server,
    tcp,
    wait_text,
)
from tests.integration.web_support import fetch

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: A line of ours the server confirmed (none of the waiting/failed states).
CONFIRMED = ":not(.s-pending):not(.s-queued):not(.s-unconfirmed):not(.s-failed)"


async def test_two_pages_and_a_tcp_client_chat_in_a_channel(
    browser: Any, servers: list[Server]
) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    alice = await open_page(browser, port, "alice")
    bob = await open_page(browser, port, "bob")
    carol = await tcp(srv, "carol", "#lobby")

    await say(alice, "hello from alice")
    await wait_text(bob, "hello from alice")
    await carol.expect(r":alice!\S+ PRIVMSG #lobby :hello from alice$")
    # alice's own line was confirmed by the server's echo (not pending any more)
    await alice.wait_for_selector("#log .msg.self:not(.s-pending) >> text=hello from alice")

    await carol.send("PRIVMSG #lobby :hello from carol")
    await wait_text(alice, "hello from carol")
    await wait_text(bob, "hello from carol")

    await say(bob, "/me waves")
    await alice.wait_for_selector("#log .msg.k-action >> text=waves")
    await carol.expect(r":bob!\S+ PRIVMSG #lobby :\x01ACTION waves\x01$")

    # the member list: alice joined first (operator), bob and carol
    await alice.wait_for_function(
        "() => document.querySelectorAll('#member-list .member').length === 3"
    )
    members = await alice.eval_on_selector_all(
        "#member-list .member", "els => els.map(e => e.textContent)"
    )
    assert members == ["@alice", "bob", "carol"]
    # every prefix shows (multi-prefix): bob gets voice, then operator too
    await say(alice, "/quote MODE #lobby +v bob")
    await say(alice, "/quote MODE #lobby +o bob")
    await bob.wait_for_selector("#member-list .member:has-text('@+bob')")
    await say(alice, "/quote MODE #lobby -o bob")
    await bob.wait_for_selector("#member-list .member:has-text('+bob')")
    assert await bob.eval_on_selector_all(
        "#member-list .member", "els => els.map(e => e.textContent)"
    ) == ["@alice", "+bob", "carol"]
    # a mention is highlighted
    await carol.send("PRIVMSG #lobby :alice: look at this")
    await alice.wait_for_selector("#log .msg.highlight >> text=alice: look at this")
    await wait_text(bob, "alice: look at this")
    for page in (alice, bob):
        texts = await log_texts(page)
        assert texts == ["hello from alice", "hello from carol", "waves", "alice: look at this"]
        assert page.errors == []
        assert await page.evaluate("() => window.__cspViolations") == []
    await carol.close()
    await alice.context.close()
    await bob.context.close()


async def test_reload_restores_the_buffer_from_history(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    page = await open_page(browser, port, "alice")
    bob = await tcp(srv, "bob", "#lobby")
    for i in range(3):
        await bob.send(f"PRIVMSG #lobby :line {i}")
    await say(page, "my own line")
    await wait_text(page, "line 2")
    await wait_text(page, "my own line")
    await page.reload()
    await page.wait_for_selector('#status[data-state="connected"]')
    await wait_text(page, "my own line")
    await wait_text(page, "line 0")
    texts = await log_texts(page)
    assert texts == ["line 0", "line 1", "line 2", "my own line"], texts
    await bob.close()
    await page.context.close()


async def test_earlier_pages_load_when_scrolling_up(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    bob = await tcp(srv, "bob", "#lobby")
    for i in range(120):
        await bob.send(f"PRIVMSG #lobby :old {i}")
    await bob.send("PING :sync")
    await bob.expect("PONG")
    page = await open_page(browser, http_port(srv), "alice", width=1000, height=600)
    await wait_text(page, "old 119")
    assert len(await log_texts(page)) == 50  # CHATHISTORY LATEST: the last page only
    for _ in range(10):
        await page.eval_on_selector(
            "#log", "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }"
        )
        await page.wait_for_function("() => !window.relaychatApp.state.active.history.loading")
        if len(await log_texts(page)) == 120:
            break
    texts = await log_texts(page)
    assert texts == [f"old {i}" for i in range(120)], texts
    # reading old lines, a new one does not pull the view down: a button offers to go there
    await bob.send("PRIVMSG #lobby :something new")
    await page.wait_for_selector("#btn-latest:not([hidden])")
    await page.click("#btn-latest")
    await wait_text(page, "something new")
    assert await page.evaluate(
        "() => { const l = document.getElementById('log');"
        " return l.scrollHeight - l.scrollTop - l.clientHeight < 40; }"
    )
    await page.wait_for_selector("text=This is the beginning of #lobby")
    await bob.close()
    await page.context.close()


async def test_server_restart_missed_lines_once_and_offline_lines_sent_once(
    browser: Any, servers: list[Server]
) -> None:
    first = await start_server(servers)
    irc_port = first.addresses[0][1]
    port = http_port(first)
    config = replace(first.config, port=irc_port)
    page = await open_page(browser, port, "alice", "#room")
    bob = await tcp(first, "bob", "#room")
    await bob.send("PRIVMSG #room :before the restart")
    await wait_text(page, "before the restart")
    await bob.close()

    await first.stop()
    servers.remove(first)
    await page.wait_for_selector('#status[data-state="waiting"]')
    await say(page, "typed while offline")
    await page.wait_for_selector("#log .msg.s-queued >> text=typed while offline")

    # While the page cannot reach the server (HTTP port off), others talk in #room.
    quiet = await start_server(servers, replace(config, http=replace(config.http, port=0)))
    carol = await tcp(quiet, "carol", "#room")
    erin = await tcp(quiet, "erin", "#room")
    for i in range(3):
        await carol.send(f"PRIVMSG #room :missed {i}")
    await erin.expect(r"PRIVMSG #room :missed 2$")  # relayed, so in history.db
    await carol.close()
    await erin.close()
    await quiet.stop()
    servers.remove(quiet)

    back = await start_server(servers, config)
    await page.wait_for_selector('#status[data-state="connected"]', timeout=60_000)
    await wait_text(page, "missed 2")
    await page.wait_for_selector(
        "#log .msg.self:not(.s-queued):not(.s-pending) >> text=typed while offline"
    )
    dave = await tcp(back, "dave", "#room")
    await dave.send("PRIVMSG #room :after the restart")
    await wait_text(page, "after the restart")
    texts = await log_texts(page)
    assert texts == [
        "before the restart",
        "missed 0",
        "missed 1",
        "missed 2",
        "typed while offline",
        "after the restart",
    ], texts
    # the server got the offline line exactly once
    await dave.send("PING :replay-done")  # the lines replayed on JOIN come before the PONG
    await dave.expect(r"PONG .*replay-done")
    dave.seen.clear()
    await dave.send("CHATHISTORY LATEST #room * 50")
    await dave.send("PING :history-done")
    await dave.expect(r"PONG .*history-done")
    sent = [line for line in dave.seen if "typed while offline" in line]
    assert len(sent) == 1, sent
    assert page.errors == []
    await dave.close()
    await page.context.close()


async def test_lines_typed_offline_survive_closing_the_tab(
    browser: Any, servers: list[Server]
) -> None:
    first = await start_server(servers)
    config = replace(first.config, port=first.addresses[0][1])
    port = http_port(first)
    page = await open_page(browser, port, "alice", "#room")
    await first.stop()
    servers.remove(first)
    await page.wait_for_selector('#status[data-state="waiting"]')
    await say(page, "written on the train")
    await page.wait_for_selector("#log .msg.s-queued >> text=written on the train")
    ctx = page.context
    await page.close()  # the tab is closed before the network is back

    back = await start_server(servers, config)
    bob = await tcp(back, "bob", "#room")
    again = await ctx.new_page()
    await again.goto(f"http://127.0.0.1:{port}/")  # signed in by itself, the line goes out
    await bob.expect(r":alice!\S+ PRIVMSG #room :written on the train$")
    await again.wait_for_selector(
        "#log .msg.self:not(.s-queued):not(.s-pending) >> text=written on the train"
    )
    await again.reload()  # sent once: not again after another load
    await wait_text(again, "written on the train")
    await bob.send("PING :end")
    await bob.expect("PONG")
    assert sum("written on the train" in line for line in bob.seen) == 1, bob.seen
    assert await log_texts(again) == ["written on the train"]
    await bob.close()
    await ctx.close()


async def test_xss_payloads_render_as_text(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    page = await open_page(browser, http_port(srv), "alice")
    await page.evaluate("() => { window.__xss = 0; }")
    bob = await tcp(srv, "bob", "#lobby")
    payloads = [
        "<script>window.__xss = 1</script>",
        '<img src=x onerror="window.__xss = 2">',
        "javascript:window.__xss=3",
        '<a href="javascript:window.__xss=4">click</a>',
        "see http://ok.example/<b>x</b> and javascript://x%0Aalert(1)",
        "\x02bold\x02 \x0304red\x03 plain",
    ]
    for p in payloads:
        await bob.send(f"PRIVMSG #lobby :{p}")
    await say(page, "/topic <img src=x onerror=window.__xss=5>")  # alice is the operator
    await wait_text(page, "bold red plain")
    await page.wait_for_function(
        "() => document.getElementById('buf-topic').textContent.includes('<img')"
    )
    texts = await log_texts(page)
    assert texts[:5] == payloads[:5]
    assert await page.evaluate("() => window.__xss") == 0
    found = await page.eval_on_selector_all("#log img, #log script, header img", "e => e.length")
    assert found == 0
    hrefs = await page.eval_on_selector_all("#log a", "els => els.map(a => a.href)")
    assert hrefs == ["http://ok.example/"], hrefs  # the link stops at "<"
    shown = "e => e.map(x => x.textContent)"
    assert await page.eval_on_selector_all("#log .f-b", shown) == ["bold"]
    assert await page.eval_on_selector_all("#log .fg4", shown) == ["red"]
    # what we type is shown as text too
    await say(page, "<img src=y onerror=window.__xss=6>")
    await wait_text(page, "<img src=y onerror=window.__xss=6>")
    assert await page.evaluate("() => window.__xss") == 0
    await bob.close()
    await page.context.close()


async def test_a_360px_phone_screen_is_usable(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    page = await open_page(browser, http_port(srv), "alice", "#lobby #dev", width=360, height=740)
    bob = await tcp(srv, "bob", "#lobby", "#dev")
    # the buffer list is a drawer, closed at first
    assert not await page.evaluate(
        "() => document.getElementById('sidebar').getBoundingClientRect().right > 0"
    )
    await bob.send("PRIVMSG #dev :news in dev")
    await page.wait_for_selector("#buffers li.unread[data-key='#dev']", state="attached")
    await page.click("#btn-menu")
    await page.click("#buffers li[data-key='#dev']")
    await page.wait_for_function("() => document.getElementById('buf-name').textContent === '#dev'")
    await wait_text(page, "news in dev")
    # the drawer closed again, and nothing is wider than the screen
    await page.wait_for_function(
        "() => document.getElementById('sidebar').getBoundingClientRect().right <= 0"
    )
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360
    await say(page, "sent from a phone")
    await bob.expect(r":alice!\S+ PRIVMSG #dev :sent from a phone$")
    box = await page.eval_on_selector("#input", "e => e.getBoundingClientRect().toJSON()")
    assert box["right"] <= 360 and box["bottom"] <= 740
    await bob.close()
    await page.context.close()


async def test_private_messages(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    page = await open_page(browser, http_port(srv), "alice")
    bob = await tcp(srv, "bob", "#lobby")
    await bob.send("PRIVMSG alice :psst, alice")
    await page.wait_for_selector("#buffers li[data-key='bob'] .count.mention")
    await page.click("#buffers li[data-key='bob']")
    await wait_text(page, "psst, alice")
    await say(page, "hi bob, privately")
    await bob.expect(r":alice!\S+ PRIVMSG bob :hi bob, privately$")
    await say(page, "/msg carol nobody here")  # no such nick: shown as not sent
    await page.click("#buffers li[data-key='carol']")
    await page.wait_for_selector("#log .msg.s-failed >> text=nobody here")
    await bob.close()
    await page.context.close()


async def test_tab_completes_nicks(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    page = await open_page(browser, http_port(srv), "alice")
    clients = [await tcp(srv, n, "#lobby") for n in ("bella", "bob", "carol")]
    await page.wait_for_function(
        "() => document.querySelectorAll('#member-list .member').length === 4"
    )
    await page.fill("#input", "ca")
    await page.press("#input", "Tab")
    assert await page.input_value("#input") == "carol: "
    await page.fill("#input", "thanks b")
    await page.press("#input", "Tab")
    first = await page.input_value("#input")
    await page.press("#input", "Tab")
    second = await page.input_value("#input")
    assert {first, second} == {"thanks bella ", "thanks bob "}
    for c in clients:
        await c.close()
    await page.context.close()


async def test_a_webhook_post_appears_in_the_page(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    token = HookStore(srv.config.data_path()).add("#deploys", "ci", time.time())
    page = await open_page(browser, port, "alice", "#deploys")
    body = json.dumps({"text": "deployed"}).encode()
    answer = await fetch(port, "POST", f"/hooks/{token}", body=body)
    assert answer.status == 200, answer.body
    await wait_text(page, "deployed")
    nick = await page.eval_on_selector("#log .msg:last-child .nick", "e => e.textContent")
    assert nick == "ci/hook"
    # the hook's bot is in bot mode (+B): its messages carry the bot tag, shown as a badge
    badge = await page.eval_on_selector("#log .msg:last-child .badge.bot", "e => e.textContent")
    assert badge == "bot"
    await page.context.close()


async def test_account_created_in_the_page_then_sasl_after_reload(
    browser: Any, servers: list[Server]
) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    page = await open_page(browser, port, "alice", password="correct horse", register=True)
    await page.wait_for_function("() => window.relaychatApp.client.account === 'alice'")
    await page.reload()
    await page.wait_for_selector('#status[data-state="connected"]')
    await page.wait_for_function("() => window.relaychatApp.client.account === 'alice'")
    await page.context.close()
    # a wrong password is refused with a clear message on the sign-in form
    ctx = await browser.new_context()
    bad = await ctx.new_page()
    await bad.goto(f"http://127.0.0.1:{port}/")
    await bad.fill("#login-nick", "alice")
    await bad.fill("#login-password", "wrong password")
    await bad.click("#login-form button[type=submit]")
    await bad.wait_for_selector("#login-error:has-text('Login failed')")
    await ctx.close()


async def test_the_page_has_no_inline_code(servers: list[Server]) -> None:
    """The page keeps to its CSP: no inline script or style, no event-handler attributes."""
    srv = await start_server(servers)
    answer = await fetch(http_port(srv), "GET", "/")
    html = answer.body.decode()
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/js/main.js">']


# --- IRCv3 extensions the server offers: each lights up in the page ---------------------------


async def test_multiline_paste_is_one_message(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    alice = await open_page(browser, port, "alice")
    bob = await open_page(browser, port, "bob")
    carol = await tcp(srv, "carol", "#lobby")  # no draft/multiline: one PRIVMSG a line
    assert await alice.evaluate("() => window.relaychatApp.client.has('draft/multiline')")
    await alice.fill("#input", "first line\nsecond line\n\nfourth line")
    await alice.press("#input", "Enter")
    await wait_text(bob, "first line\nsecond line\n\nfourth line")
    await alice.wait_for_selector("#log .msg.self:not(.s-pending) >> text=fourth line")
    for text in ("first line", "second line", "fourth line"):
        await carol.expect(rf":alice!\S+ PRIVMSG #lobby :{text}$")
    assert await log_texts(alice) == ["first line\nsecond line\n\nfourth line"]
    # after a reload it comes back from history as one message too
    await bob.reload()
    await bob.wait_for_selector('#status[data-state="connected"]')
    await wait_text(bob, "first line\nsecond line\n\nfourth line")
    await carol.close()
    await alice.context.close()
    await bob.context.close()


async def test_typing_indicator(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    alice = await open_page(browser, port, "alice")
    bob = await open_page(browser, port, "bob")
    await alice.type("#input", "hel")
    await bob.wait_for_selector("#typing:has-text('alice is typing')")
    await alice.fill("#input", "")  # emptied: done
    await bob.wait_for_function("() => document.getElementById('typing').textContent === ''")
    await alice.type("#input", "hello")
    await bob.wait_for_selector("#typing:has-text('alice is typing')")
    await alice.press("#input", "Enter")  # a message ends the typing
    await wait_text(bob, "hello")
    await bob.wait_for_function("() => document.getElementById('typing').textContent === ''")
    await alice.context.close()
    await bob.context.close()


async def test_read_marker_syncs_between_tabs_of_one_account(
    browser: Any, servers: list[Server]
) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    first = await open_page(browser, port, "alice", password="correct horse", register=True)
    await first.wait_for_function("() => window.relaychatApp.client.has('draft/read-marker')")
    # a second tab (another device) logs in to the same account
    second = await open_page(browser, port, "alice", password="correct horse")
    await second.click("#buffers li.kind-server")  # looks at the server buffer, not #lobby
    bob = await tcp(srv, "bob", "#lobby")
    await bob.send("PRIVMSG #lobby :read me")
    await second.wait_for_selector("#buffers li[data-key='#lobby'] .count")
    # the first tab shows #lobby: it is read there, and so on the second tab too
    await wait_text(first, "read me")
    await second.wait_for_selector("#buffers li[data-key='#lobby'] .count", state="detached")
    await bob.close()
    await first.context.close()
    await second.context.close()


async def test_redaction_shows_the_message_was_deleted(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    alice = await open_page(browser, port, "alice")
    bob = await open_page(browser, port, "bob")
    await say(alice, "oops, wrong channel")
    await wait_text(bob, "oops, wrong channel")
    row = alice.locator("#log .msg.self", has_text="oops, wrong channel")
    await row.hover()
    await row.locator("button.redact").click()
    await bob.wait_for_selector("#log .msg.redacted >> text=message deleted")
    assert "oops, wrong channel" not in await log_texts(bob)
    await bob.reload()  # redacted messages are gone from history
    await bob.wait_for_selector('#status[data-state="connected"]')
    await bob.wait_for_function("() => window.relaychatApp.state.get('#lobby').history.loaded")
    assert "oops, wrong channel" not in await log_texts(bob)
    await alice.context.close()
    await bob.context.close()


async def test_monitor_and_display_names(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    page = await open_page(browser, http_port(srv), "alice")
    bob = await tcp(srv, "bob", "#lobby")
    await bob.send("METADATA * SET display-name :Bob Builder")
    await page.wait_for_selector("#member-list .display-name:has-text('Bob Builder')")
    await bob.send("PRIVMSG alice :ping")
    await page.click("#buffers li[data-key='bob']")
    await page.wait_for_selector("#buffers li[data-key='bob'] .presence.on")
    await bob.send("QUIT :gone")
    await page.wait_for_selector("#buffers li[data-key='bob'] .presence.off")
    await page.wait_for_selector("#buf-topic:has-text('offline')")
    await page.context.close()


async def test_pure_modules_in_the_browser(browser: Any, servers: list[Server]) -> None:
    """The protocol and text modules, loaded as the page loads them."""
    srv = await start_server(servers)
    ctx = await browser.new_context()
    page = await ctx.new_page()
    await page.goto(f"http://127.0.0.1:{http_port(srv)}/")
    got = await page.evaluate(
        """async () => {
        const irc = await import('/js/irc.js');
        const text = await import('/js/text.js');
        const conn = await import('/js/connection.js');
        const m = irc.parse('@time=2026-01-01T00:00:00.000Z;+typing=active;x=a\\\\sb\\\\: '
          + ':nick!user@host PRIVMSG #chan :hello  world');
        const split = irc.splitBytes('é'.repeat(300), 100);
        const delays = [1, 2, 3, 10].map(n => conn.backoffDelay(n, {random: () => 0.999}));
        return {
          nick: m.nick, user: m.user, host: m.host, command: m.command, params: m.params,
          tags: m.tags,
          built: irc.build('PRIVMSG', ['#a', 'hi there'], {label: 'a;b c'}),
          injected: irc.build('PRIVMSG', ['#a', 'x\\r\\nQUIT :y']),
          fold: irc.makeCasefold('rfc1459')('Nick[]\\\\^'),
          splitLens: split.map(s => new TextEncoder().encode(s).length),
          splitJoined: split.join('') === 'é'.repeat(300),
          strip: irc.stripFormatting('\\x02b\\x02 \\x0304,01red\\x03 \\x1ditalic'),
          action: irc.actionText('\\x01ACTION waves\\x01'),
          hrefs: ['javascript:alert(1)', 'https://ok.example/a', 'data:text/html,x', 'http://x']
            .map(u => text.safeHref(u)),
          delays,
          jitterFloor: conn.backoffDelay(5, {random: () => 0}),
        };
      }"""
    )
    assert (got["nick"], got["user"], got["host"]) == ("nick", "user", "host")
    assert got["command"] == "PRIVMSG" and got["params"] == ["#chan", "hello  world"]
    assert got["tags"] == {"time": "2026-01-01T00:00:00.000Z", "+typing": "active", "x": "a b;"}
    assert got["built"] == "@label=a\\:b\\sc PRIVMSG #a :hi there"
    assert got["injected"] == "PRIVMSG #a :xQUIT :y"  # one line, never two
    assert got["fold"] == "nick{}|~"
    assert max(got["splitLens"]) <= 100 and got["splitJoined"]
    assert got["strip"] == "b red italic"
    assert got["action"] == "waves"
    assert got["hrefs"] == [None, "https://ok.example/a", None, "http://x/"]
    assert got["delays"] == [499, 999, 1998, 29970]  # full jitter under 0.5 s * 2^(n-1), cap 30 s
    assert got["jitterFloor"] == 0
    await ctx.close()


async def test_keyboard_commands_and_the_channel_list(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    page = await open_page(browser, http_port(srv), "alice", "#lobby #dev")
    bob = await tcp(srv, "bob", "#lobby")
    # ARIA roles: the log, the buffer list, the member list, the connection status
    for selector in (
        "#log[role=log]",
        "#buffers[role=listbox]",
        "#member-list[role=list]",
        "#status[role=status]",
    ):
        assert await page.locator(selector).count() == 1, selector
    # Alt+1 is the first buffer (the server's), arrows move in the list, Ctrl+K finds one
    await page.keyboard.press("Alt+1")
    await page.wait_for_selector("#buffers li.kind-server.active")
    await page.focus("#buffers")
    await page.keyboard.press("ArrowDown")
    await page.wait_for_selector("#buffers li.active[data-key='#dev']")
    await page.keyboard.press("End")
    await page.wait_for_selector("#buffers li.active[data-key='#lobby']")
    await page.keyboard.press("Control+k")
    await page.keyboard.type("dv")
    await page.keyboard.press("Enter")
    await page.wait_for_function("() => document.getElementById('buf-name').textContent === '#dev'")
    # Ctrl+K with "#name" joins a new channel
    await page.keyboard.press("Control+k")
    await page.keyboard.type("#fresh")
    await page.keyboard.press("Enter")
    await page.wait_for_function("() => window.relaychatApp.state.get('#fresh')?.joined")
    # slash commands
    await say(page, "/nick alicia")
    await page.wait_for_selector("#status:has-text('Connected as alicia')")
    await bob.expect(r":alice!\S+ NICK :?alicia$")
    await say(page, "/whois bob")
    await page.wait_for_selector("#log .msg.k-info >> text=End of WHOIS")
    await page.click("#buffers li[data-key='#lobby']")
    await say(page, "/part")
    await page.wait_for_selector("#buffers li.parted[data-key='#lobby']")
    await say(page, "/close")
    await page.wait_for_selector("#buffers li[data-key='#lobby']", state="detached")
    # the channel list (LIST): join from it
    await page.click("#btn-list")
    await page.wait_for_selector("#channels-list .channel-row:has-text('#lobby')")
    await page.click("#channels-list .channel-row:has-text('#lobby') button")
    await page.wait_for_function("() => window.relaychatApp.state.get('#lobby')?.joined")
    assert page.errors == []
    await bob.close()
    await page.context.close()


async def test_notifications_only_after_a_click(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    ctx = await browser.new_context(permissions=["notifications"])
    # count what the page asks of the Notification API (the real one still runs)
    await ctx.add_init_script(
        """(() => {
          const Real = window.Notification;
          window.__asked = 0; window.__shown = [];
          class Counted extends Real {
            constructor(title, opts) { super(title, opts); window.__shown.push(title); }
            static requestPermission() { window.__asked += 1; return Real.requestPermission(); }
            static get permission() { return Real.permission; }
          }
          window.Notification = Counted;
        })();"""
    )
    page = await open_page(browser, http_port(srv), "alice", "#lobby #dev", context=ctx)
    assert await page.evaluate("() => window.__asked") == 0  # never on load
    await page.click("#btn-notify")
    await page.wait_for_function("() => window.__asked === 1")
    bob = await tcp(srv, "bob", "#dev")
    await bob.send("PRIVMSG #dev :alice: a mention in another buffer")
    await bob.send("PRIVMSG alice :a private message")
    await bob.send("PRIVMSG #dev :not for anyone in particular")
    await page.wait_for_function("() => window.__shown.length >= 2")
    await bob.send("PING :x")
    await bob.expect("PONG")
    await page.wait_for_timeout(200)
    assert await page.evaluate("() => window.__shown") == ["bob in #dev", "bob"]
    await bob.close()
    await ctx.close()


async def test_a_line_in_doubt_is_sent_exactly_once(browser: Any, servers: list[Server]) -> None:
    """The link drops after a line was written: whether the line or its answer was lost, it
    arrives once (relaychat.dev/idempotency: written again with the same key)."""
    srv = await start_server(servers)
    port = http_port(srv)
    bob = await tcp(srv, "bob", "#room")
    ctx = await browser.new_context()
    cut: dict[str, str | None] = {"line": None, "answer": None}
    tasks: list[Any] = []

    async def route(page_side: Any) -> None:
        # a proxy between the page and the server that loses one line, then drops the link
        server_side = page_side.connect_to_server()

        def drop(side: Any) -> None:
            tasks.append(asyncio.ensure_future(page_side.close(code=1006)))
            tasks.append(asyncio.ensure_future(server_side.close()))

        def to_server(message: str | bytes) -> None:
            text = cut["line"]
            if text and isinstance(message, str) and message.endswith(f"PRIVMSG #room :{text}"):
                cut["line"] = None
                drop(page_side)
                return
            server_side.send(message)

        def to_page(message: str | bytes) -> None:
            text = cut["answer"]
            if text and isinstance(message, str) and message.endswith(f"PRIVMSG #room :{text}"):
                cut["answer"] = None
                drop(page_side)
                return
            page_side.send(message)

        page_side.on_message(to_server)
        server_side.on_message(to_page)

    await ctx.route_web_socket(re.compile(r".*/ws$"), route)
    page = await open_page(browser, port, "alice", "#room", context=ctx)
    assert await page.evaluate("() => window.relaychatApp.client.has('relaychat.dev/idempotency')")

    cut["answer"] = "the answer got lost"  # relayed, but the echo never reaches the page
    await say(page, "the answer got lost")
    cut["line"] = None
    await page.wait_for_selector(f"#log .msg.self{CONFIRMED} >> text=the answer got lost")
    await page.wait_for_selector('#status[data-state="connected"]')
    cut["line"] = "the line got lost"  # never reaches the server
    await say(page, "the line got lost")
    await page.wait_for_selector(f"#log .msg.self{CONFIRMED} >> text=the line got lost")
    await bob.expect(r":alice\S* PRIVMSG #room :the line got lost$")
    await bob.send("PING :end")
    await bob.expect("PONG")
    for text in ("the answer got lost", "the line got lost"):
        assert sum(line.endswith(f"PRIVMSG #room :{text}") for line in bob.seen) == 1, bob.seen
    assert await log_texts(page) == ["the answer got lost", "the line got lost"]
    await asyncio.gather(*tasks, return_exceptions=True)
    await bob.close()
    await ctx.close()
