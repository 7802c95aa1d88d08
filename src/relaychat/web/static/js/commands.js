// Slash commands: a table of name -> {usage, help, run(app, args, buf)}. `app` is the glue in
// main.js (client, state, UI actions). Unknown commands are sent as they are, like /quote.

import { build } from "./irc.js";

function need(app, buf, cond, usage) {
  if (!cond) app.client.info(buf, `Usage: ${usage}`, "error");
  return cond;
}

function words(args) {
  return args.split(" ").filter(Boolean);
}

export const COMMANDS = {
  join: {
    usage: "/join #channel[,#other] [key]",
    help: "join channels",
    run(app, args, buf) {
      const [chans, key] = words(args);
      if (!need(app, buf, chans, this.usage)) return;
      const names = chans.split(",").map((c) => (app.client.isChannel(c) ? c : `#${c}`));
      for (const n of names) {
        const b = app.state.get(n) || app.state.add(n, "channel");
        b.parted = false;
      }
      app.client.send(build("JOIN", key ? [names.join(","), key] : [names.join(",")]));
      app.select(app.state.get(names[0]));
    },
  },
  part: {
    usage: "/part [#channel] [reason]",
    help: "leave a channel (the buffer stays until /close)",
    run(app, args, buf) {
      let [target, ...rest] = words(args);
      if (!target || !app.client.isChannel(target)) {
        rest = target ? [target, ...rest] : rest;
        target = buf.kind === "channel" ? buf.name : null;
      }
      if (!need(app, buf, target, this.usage)) return;
      const b = app.state.get(target);
      if (b) b.parted = true;
      app.client.send(build("PART", rest.length ? [target, rest.join(" ")] : [target]));
    },
  },
  close: {
    usage: "/close",
    help: "close this buffer (leaving the channel)",
    run(app, args, buf) {
      app.closeBuffer(args.trim() ? app.state.get(args.trim()) || buf : buf);
    },
  },
  msg: {
    usage: "/msg <nick|#channel> <text>",
    help: "send a message",
    run(app, args, buf) {
      const m = /^(\S+)\s+([\s\S]+)$/.exec(args.trim());
      if (!need(app, buf, m, this.usage)) return;
      const target = app.openBuffer(m[1], false);
      app.client.say(target, m[2]);
    },
  },
  query: {
    usage: "/query <nick> [text]",
    help: "open a private conversation",
    run(app, args, buf) {
      const m = /^(\S+)(?:\s+([\s\S]+))?$/.exec(args.trim());
      if (!need(app, buf, m, this.usage)) return;
      const target = app.openBuffer(m[1], true);
      if (m[2]) app.client.say(target, m[2]);
    },
  },
  me: {
    usage: "/me <action>",
    help: "an action: * you <action>",
    run(app, args, buf) {
      if (!need(app, buf, args.trim() && buf.kind !== "server", this.usage)) return;
      app.client.say(buf, args.trim(), "action");
    },
  },
  notice: {
    usage: "/notice <nick|#channel> <text>",
    help: "send a notice",
    run(app, args, buf) {
      const m = /^(\S+)\s+([\s\S]+)$/.exec(args.trim());
      if (!need(app, buf, m, this.usage)) return;
      app.client.say(app.openBuffer(m[1], false), m[2], "notice");
    },
  },
  nick: {
    usage: "/nick <new nick>",
    help: "change your nick",
    run(app, args, buf) {
      const [n] = words(args);
      if (!need(app, buf, n, this.usage)) return;
      app.client.send(build("NICK", [n]));
    },
  },
  topic: {
    usage: "/topic [#channel] [new topic]",
    help: "show or set the topic",
    run(app, args, buf) {
      let text = args.trim();
      let target = buf.name;
      const first = text.split(" ")[0];
      if (first && app.client.isChannel(first)) {
        target = first;
        text = text.slice(first.length).trim();
      }
      if (!need(app, buf, app.client.isChannel(target), this.usage)) return;
      if (text) app.client.send(build("TOPIC", [target, text]));
      else {
        const b = app.state.get(target);
        app.client.info(buf, b && b.topic ? `Topic of ${target}: ${b.topic}` : `${target} has no topic`);
      }
    },
  },
  away: {
    usage: "/away [message]",
    help: "mark yourself away (no message: back)",
    run(app, args) {
      app.client.send(args.trim() ? build("AWAY", [args.trim()]) : "AWAY");
    },
  },
  back: {
    usage: "/back",
    help: "you are back",
    run(app) {
      app.client.send("AWAY");
    },
  },
  whois: {
    usage: "/whois <nick>",
    help: "who is someone",
    run(app, args, buf) {
      const [n] = words(args);
      if (!need(app, buf, n || buf.kind === "query", this.usage)) return;
      app.client.send(build("WHOIS", [n || buf.name]));
    },
  },
  list: {
    usage: "/list [filter]",
    help: "browse the channels",
    run(app, args) {
      app.openChannelList(args.trim());
    },
  },
  names: {
    usage: "/names",
    help: "who is in this channel",
    run(app, args, buf) {
      if (buf.kind !== "channel") return;
      const names = buf.sortedMembers(app.client.prefix.symbols).map((m) => (m.prefixes[0] || "") + m.nick);
      app.client.info(buf, `In ${buf.name} (${names.length}): ${names.join(" ")}`);
    },
  },
  quote: {
    usage: "/quote <raw IRC line>",
    help: "send a raw IRC command",
    run(app, args, buf) {
      if (!need(app, buf, args.trim(), this.usage)) return;
      app.client.send(args.trim().replace(/[\r\n]/g, " "));
    },
  },
  quit: {
    usage: "/quit [reason]",
    help: "disconnect (reload the page to connect again)",
    run(app, args) {
      app.client.quit(args.trim());
    },
  },
  clear: {
    usage: "/clear",
    help: "clear this buffer on screen",
    run(app, args, buf) {
      buf.messages.length = 0;
      buf.msgids.clear();
      buf.history.complete = false;
      app.state.emit("messages-all", buf);
    },
  },
  help: {
    usage: "/help [command]",
    help: "this list",
    run(app, args, buf) {
      const name = args.trim().replace(/^\//, "").toLowerCase();
      const c = ALIASES[name] ? COMMANDS[ALIASES[name]] : COMMANDS[name];
      if (c) {
        app.client.info(buf, `${c.usage} — ${c.help}`);
        return;
      }
      app.client.info(buf, "Commands (// sends a line starting with /):");
      for (const cmd of Object.values(COMMANDS)) app.client.info(buf, `${cmd.usage} — ${cmd.help}`);
      app.client.info(buf, "Keys: Alt+1..9 buffers, Alt+↑/↓ previous/next, Ctrl+K find a buffer, Tab completes a nick, Shift+Enter new line");
    },
  },
};

const ALIASES = { j: "join", raw: "quote", q: "query", leave: "part", wc: "close", m: "msg", w: "whois" };

export const COMMAND_NAMES = Object.keys(COMMANDS).sort();

/**
 * Run a typed line: "/cmd args" runs the command, "//text" and plain text are said in `buf`.
 */
export function runInput(app, buf, line) {
  if (line.startsWith("/") && !line.startsWith("//")) {
    const m = /^\/(\S+)\s?([\s\S]*)$/.exec(line);
    const name = (m ? m[1] : "").toLowerCase();
    const cmd = COMMANDS[ALIASES[name] || name];
    if (cmd) cmd.run(app, m[2] || "", buf);
    else app.client.send(line.slice(1).replace(/[\r\n]/g, " "));
    return;
  }
  const text = line.startsWith("//") ? line.slice(1) : line;
  if (buf.kind === "server") {
    app.client.info(buf, "This is the server buffer: join a channel (/join #name) or type /help", "error");
    return;
  }
  if (buf.kind === "channel" && buf.parted) {
    app.client.info(buf, `You left ${buf.name}: /join ${buf.name} to talk here again`, "error");
    return;
  }
  app.client.say(buf, text);
}
