// What each incoming IRC command does to the model. One function per command (a table, as the
// server's own registry), each called as handler(client, msg, ctx) with ctx.label set when the
// line answers one of our labeled commands.

import { actionText, build, ctcpVerb, parseTime, stripFormatting } from "./irc.js";
import { nextId } from "./state.js";

/** The time of a message: its server-time tag, else now. */
export function timeOf(msg) {
  const t = parseTime(msg.tags.time);
  return Number.isNaN(t) ? Date.now() : t;
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Does `text` name `nick` (as a word)? */
export function mentions(text, nick) {
  if (!nick) return false;
  const rx = new RegExp(`(^|[^\\w\\-\\[\\]\\\\^{}|\`])${escapeRegExp(nick)}($|[^\\w\\-\\[\\]\\\\^{}|\`])`, "i");
  return rx.test(stripFormatting(text));
}

/**
 * A PRIVMSG/NOTICE (live or from history) -> {buffer name, kind of buffer, entry}, or null for
 * what is not shown (CTCP requests). `historyTarget` is the target a history batch was for.
 */
export function routeMessage(client, msg, historyTarget = null) {
  let target = msg.params[0] || "";
  let text = msg.params[1] || "";
  const statusPrefix = client.isupport.get("STATUSMSG") || "";
  while (target && statusPrefix.includes(target[0]) && client.isChannel(target.slice(1))) target = target.slice(1);
  const self = client.isMe(msg.nick);
  let kind = msg.command === "NOTICE" ? "notice" : "message";
  const action = actionText(text);
  if (action !== null) {
    kind = "action";
    text = action;
  } else if (ctcpVerb(text)) {
    return null; // CTCP requests/replies are not conversation
  }
  let bufName;
  let bufKind;
  if (client.isChannel(target)) {
    bufName = target;
    bufKind = "channel";
  } else if (historyTarget) {
    bufName = historyTarget;
    bufKind = client.isChannel(historyTarget) ? "channel" : "query";
  } else if (!msg.nick || !msg.source.includes("!") || (msg.source.includes(".") && !msg.source.includes("@"))) {
    bufName = null; // from the server
    bufKind = "server";
  } else {
    bufName = self ? target : msg.nick;
    bufKind = "query";
  }
  const entry = {
    id: nextId(),
    time: timeOf(msg),
    msgid: msg.tags.msgid || null,
    nick: msg.nick || msg.source,
    kind,
    text,
    self,
    account: msg.tags.account || null,
    bot: "bot" in msg.tags || "draft/bot" in msg.tags,
    multiline: !!msg.multiline,
  };
  entry.highlight = !self && mentions(text, client.me);
  return { bufName, bufKind, entry };
}

function bufferFor(client, name, kind) {
  if (kind === "server" || !name) return client.state.server;
  return client.state.get(name) || client.state.add(name, kind);
}

function member(buf, client, nick) {
  return buf.members.get(client.casefold(nick)) || null;
}

/** Every channel buffer `nick` is in. */
function channelsOf(client, nick) {
  const key = client.casefold(nick);
  return [...client.state.buffers.values()].filter((b) => b.kind === "channel" && b.members.has(key));
}

function event(client, buf, text, msg) {
  const entry = { id: nextId(), time: msg ? timeOf(msg) : Date.now(), kind: "event", text, nick: "",
    msgid: msg?.tags?.msgid || null };
  const where = buf.insert(entry);
  if (where) client.state.emit("message", buf, { entry, where });
}

function showError(client, msg, ctx, text) {
  if (ctx.label && client.labelFailed(ctx.label, text)) return;
  client.info(client.state.active || client.state.server, text, "error");
}

/** Deliver a live PRIVMSG/NOTICE (also the result of a multiline batch). */
function deliver(client, msg, ctx) {
  const routed = routeMessage(client, msg);
  if (!routed) {
    const verb = ctcpVerb(msg.params[1] || "");
    if (verb === "VERSION" && msg.command === "PRIVMSG" && !client.isChannel(msg.params[0] || "")) {
      client.send(build("NOTICE", [msg.nick, `\x01VERSION relaychat web client\x01`]));
    }
    return;
  }
  const { bufName, bufKind, entry } = routed;
  const isNew = bufKind === "query" && !client.state.get(bufName);
  const buf = bufferFor(client, bufName, bufKind);
  if (isNew) client.monitorAdd([bufName]); // online/offline of the new conversation
  if (bufKind === "query" && buf.online === null && client.monitor && !entry.self) buf.online = true;
  buf.typing.delete(client.casefold(entry.nick));
  if (entry.self && client.confirmOwn(buf, msg, entry, ctx.label)) {
    client.state.emit("typing", buf);
    return;
  }
  if (entry.self && buf.markerSent < entry.time) buf.readMarker = Math.max(buf.readMarker, entry.time);
  const where = buf.insert(entry);
  if (!where) return;
  client.state.emit("message", buf, { entry, where, live: true });
  client.state.emit("typing", buf);
}

function nickChange(client, oldNick, newNick, msg) {
  const oldKey = client.casefold(oldNick);
  for (const buf of client.state.buffers.values()) {
    const m = buf.members.get(oldKey);
    if (m) {
      buf.members.delete(oldKey);
      m.nick = newNick;
      buf.members.set(client.casefold(newNick), m);
      event(client, buf, `${oldNick} is now known as ${newNick}`, msg);
      client.state.emit("members", buf);
    }
  }
  const query = client.state.get(oldNick);
  if (query && query.kind === "query" && !client.state.get(newNick)) {
    query.name = newNick;
    client.state.rekey();
    event(client, query, `${oldNick} is now known as ${newNick}`, msg);
    client.state.emit("buffers");
  }
}

function setPrefix(buf, client, nick, symbol, on) {
  const m = member(buf, client, nick);
  if (!m) return;
  const symbols = client.prefix.symbols;
  const have = new Set(m.prefixes);
  if (on) have.add(symbol);
  else have.delete(symbol);
  m.prefixes = [...symbols].filter((s) => have.has(s)).join("");
}

/** Apply channel MODE changes that touch members (prefix modes). */
function channelModes(client, buf, modes, args) {
  const chanmodes = (client.isupport.get("CHANMODES") || "b,k,l,imnst").split(",");
  let on = true;
  let i = 0;
  for (const c of modes) {
    if (c === "+" || c === "-") {
      on = c === "+";
      continue;
    }
    const p = client.prefix.modes.indexOf(c);
    if (p >= 0) {
      setPrefix(buf, client, args[i] || "", client.prefix.symbols[p], on);
      i += 1;
    } else if (chanmodes[0]?.includes(c) || chanmodes[1]?.includes(c) || (on && chanmodes[2]?.includes(c))) {
      i += 1;
    }
  }
}

const WHOIS = new Set(["311", "312", "313", "317", "319", "330", "335", "338", "378", "671", "276", "320"]);

export const HANDLERS = {
  PING(client, msg) {
    client.send(build("PONG", msg.params));
  },
  ERROR(client, msg) {
    client.info(client.state.server, `Server: ${msg.params[0] || "closing"}`, "error");
  },
  "001"(client, msg) {
    client.welcome(msg);
    client.info(client.state.server, msg.params[1] || "Welcome");
  },
  "005"(client, msg) {
    for (const token of msg.params.slice(1, -1)) client.isupportToken(token);
  },
  "376"(client) {
    client.ready();
  },
  "422"(client) {
    client.ready();
  },
  "433"(client, msg, ctx) {
    if (!client.registered) {
      client.nickSuffix += 1;
      client.tryNick = `${client.preferredNick}${"_".repeat(client.nickSuffix)}`;
      client.send(build("NICK", [client.tryNick]));
      return;
    }
    showError(client, msg, ctx, `Nick ${msg.params[1]} is already in use`);
  },
  "432"(client, msg, ctx) {
    if (!client.registered) client.loginFailed(`The nick ${msg.params[1]} is not allowed: ${msg.params[2] || ""}`);
    else showError(client, msg, ctx, `Nick ${msg.params[1]}: ${msg.params[2] || "not allowed"}`);
  },
  "900"(client, msg) {
    client.account = msg.params[2] || null;
    client.info(client.state.server, msg.params[3] || "Logged in");
  },
  "903"(client) {
    client.saslState = "done";
    client.capEnd();
  },
  "904"(client, msg) {
    client.loginFailed(`Login failed: ${msg.params[1] || "wrong nick or password"}`);
  },
  "905"(client, msg) {
    client.loginFailed(`Login failed: ${msg.params[1] || "message too long"}`);
  },
  "902"(client, msg) {
    client.loginFailed(`Login failed: ${msg.params[1] || "nick locked"}`);
  },
  REGISTER(client, msg) {
    if (msg.params[0] === "SUCCESS" || msg.params[0] === "VERIFICATION_REQUIRED") {
      client.info(client.state.server, msg.params[2] || `Account ${msg.params[1]} registered`);
      client.settings.register = false; // from now on (reconnects) log in with SASL
      if (!client.registered) client.capEnd();
    }
  },
  FAIL(client, msg, ctx) {
    const [command, code] = msg.params;
    const text = msg.params[msg.params.length - 1];
    if (command === "REGISTER") {
      client.loginFailed(`Could not create the account: ${text}`);
      return;
    }
    if (command === "CHATHISTORY") {
      client.history.failed(msg, ctx);
      return;
    }
    if (command === "MARKREAD" || (command === "METADATA" && code !== "RATE_LIMITED")) return;
    if (command === "TOKEN") {
      client.tokenAnswer(code === "ACCOUNT_REQUIRED" ? "log in to an account to upload files" : text);
      return;
    }
    showError(client, msg, ctx, `${command}: ${text}`);
  },
  TOKEN(client, msg) {
    if (msg.params[0] === "GENERATE") client.tokenAnswer(null, msg.params[2] || "", msg.params[3] || "");
  },
  WARN(client, msg) {
    const text = msg.params[msg.params.length - 1];
    if (msg.params[0] === "CHATHISTORY") {
      // HISTORY_GAP <subcommand> <target>: part of what was asked for is no longer kept
      const buf = client.state.get(msg.params[3] || "");
      if (buf && msg.params[1] === "HISTORY_GAP") client.info(buf, `Some history is missing: ${text}`);
      return;
    }
    client.info(client.state.server, text, "info");
  },
  NOTE(client, msg) {
    client.info(client.state.server, msg.params[msg.params.length - 1], "info");
  },
  IDEM(client, msg) {
    if (msg.params[0] === "TOKEN" && msg.params[1]) localStorage.setItem("relaychat.idem-token", msg.params[1]);
  },
  ACK(client, msg, ctx) {
    if (ctx.label) client.labelDone(ctx.label);
  },
  PRIVMSG: deliver,
  NOTICE: deliver,
  TAGMSG(client, msg) {
    const value = msg.tags["+typing"];
    if (value === undefined || client.isMe(msg.nick)) return;
    const target = msg.params[0] || "";
    const buf = client.isChannel(target) ? client.state.get(target) : client.state.get(msg.nick);
    if (!buf) return;
    const key = client.casefold(msg.nick);
    if (value === "done") buf.typing.delete(key);
    else buf.typing.set(key, { nick: msg.nick, state: value, until: Date.now() + (value === "active" ? 6000 : 30000) });
    client.state.emit("typing", buf);
  },
  JOIN(client, msg) {
    const name = msg.params[0];
    if (client.isMe(msg.nick)) {
      const buf = client.state.get(name) || client.state.add(name, "channel");
      buf.name = name;
      buf.joined = true;
      buf.parted = false;
      buf.members.clear();
      client.state.emit("buffers");
      client.history.joined(buf);
      client.flushOutbox((b) => b === buf);
      client.ui.joined?.(buf);
      return;
    }
    const buf = client.state.get(name);
    if (!buf) return;
    buf.members.set(client.casefold(msg.nick), { nick: msg.nick, prefixes: "", user: msg.user,
      host: msg.host, account: msg.params[1] && msg.params[1] !== "*" ? msg.params[1] : null, away: false });
    event(client, buf, `${msg.nick} joined`, msg);
    client.state.emit("members", buf);
  },
  PART(client, msg) {
    const buf = client.state.get(msg.params[0]);
    if (!buf) return;
    if (client.isMe(msg.nick)) {
      buf.joined = false;
      buf.members.clear();
      event(client, buf, `You left ${buf.name}`, msg);
      client.state.emit("buffers");
    } else {
      buf.members.delete(client.casefold(msg.nick));
      buf.typing.delete(client.casefold(msg.nick));
      event(client, buf, `${msg.nick} left${msg.params[1] ? ` (${msg.params[1]})` : ""}`, msg);
    }
    client.state.emit("members", buf);
  },
  KICK(client, msg) {
    const buf = client.state.get(msg.params[0]);
    if (!buf) return;
    const who = msg.params[1];
    const why = msg.params[2] ? ` (${msg.params[2]})` : "";
    if (client.isMe(who)) {
      buf.joined = false;
      buf.parted = true;
      buf.members.clear();
      event(client, buf, `You were kicked by ${msg.nick}${why}`, msg);
      client.state.emit("buffers");
    } else {
      buf.members.delete(client.casefold(who));
      event(client, buf, `${who} was kicked by ${msg.nick}${why}`, msg);
    }
    client.state.emit("members", buf);
  },
  QUIT(client, msg) {
    const why = msg.params[0] ? ` (${msg.params[0]})` : "";
    for (const buf of channelsOf(client, msg.nick)) {
      buf.members.delete(client.casefold(msg.nick));
      buf.typing.delete(client.casefold(msg.nick));
      event(client, buf, `${msg.nick} quit${why}`, msg);
      client.state.emit("members", buf);
    }
    const query = client.state.get(msg.nick);
    if (query && query.kind === "query") {
      event(client, query, `${msg.nick} quit${why}`, msg);
      if (client.monitor) query.online = false;
      client.state.emit("buffers");
    }
  },
  NICK(client, msg) {
    const newNick = msg.params[0];
    if (client.isMe(msg.nick)) {
      client.me = newNick;
      if (client.registered) client.preferredNick = newNick;
      client.info(client.state.server, `You are now known as ${newNick}`);
      client.ui.nickChanged?.(newNick);
    }
    nickChange(client, msg.nick, newNick, msg);
  },
  MODE(client, msg) {
    const target = msg.params[0] || "";
    if (!client.isChannel(target)) return;
    const buf = client.state.get(target);
    if (!buf) return;
    channelModes(client, buf, msg.params[1] || "", msg.params.slice(2));
    event(client, buf, `${msg.nick || msg.source} sets mode ${msg.params.slice(1).join(" ")}`, msg);
    client.state.emit("members", buf);
  },
  TOPIC(client, msg) {
    const buf = client.state.get(msg.params[0]);
    if (!buf) return;
    buf.topic = msg.params[1] || "";
    event(client, buf, buf.topic ? `${msg.nick} set the topic: ${buf.topic}` : `${msg.nick} cleared the topic`, msg);
    client.state.emit("topic", buf);
  },
  "332"(client, msg) {
    const buf = client.state.get(msg.params[1]);
    if (!buf) return;
    buf.topic = msg.params[2] || "";
    client.state.emit("topic", buf);
  },
  "331"(client, msg) {
    const buf = client.state.get(msg.params[1]);
    if (buf) {
      buf.topic = "";
      client.state.emit("topic", buf);
    }
  },
  "333"() {},
  "353"(client, msg) {
    const buf = client.state.get(msg.params[2]);
    if (!buf) return;
    if (!buf.namesLoading) {
      buf.namesLoading = true;
      buf.members.clear();
    }
    const symbols = client.prefix.symbols;
    for (const item of (msg.params[3] || "").split(" ").filter(Boolean)) {
      let i = 0;
      while (i < item.length && symbols.includes(item[i])) i += 1;
      const [nickPart, hostPart = ""] = item.slice(i).split("@");
      const [nick, user = ""] = nickPart.split("!");
      buf.members.set(client.casefold(nick), { nick, prefixes: item.slice(0, i), user, host: hostPart, away: false });
    }
  },
  "366"(client, msg) {
    const buf = client.state.get(msg.params[1]);
    if (!buf) return;
    buf.namesLoading = false;
    client.state.emit("members", buf);
  },
  AWAY(client, msg) {
    for (const buf of channelsOf(client, msg.nick)) {
      const m = member(buf, client, msg.nick);
      m.away = msg.params.length > 0 && msg.params[0] !== "";
      client.state.emit("members", buf);
    }
  },
  ACCOUNT(client, msg) {
    for (const buf of channelsOf(client, msg.nick)) {
      member(buf, client, msg.nick).account = msg.params[0] === "*" ? null : msg.params[0];
    }
  },
  CHGHOST(client, msg) {
    for (const buf of channelsOf(client, msg.nick)) {
      const m = member(buf, client, msg.nick);
      m.user = msg.params[0];
      m.host = msg.params[1];
    }
  },
  SETNAME() {},
  INVITE(client, msg) {
    client.info(client.state.active || client.state.server,
      `${msg.nick} invites ${msg.params[0]} to ${msg.params[1]} (/join ${msg.params[1]})`);
  },
  RENAME(client, msg) {
    const buf = client.state.get(msg.params[0]);
    if (!buf) return;
    const old = buf.name;
    buf.name = msg.params[1];
    client.state.rekey();
    event(client, buf, `${old} was renamed to ${buf.name}${msg.params[2] ? ` (${msg.params[2]})` : ""}`, msg);
    client.state.emit("buffers");
  },
  "301"(client, msg) {
    if (client.whois) {
      client.whois.push(`${msg.params[1]} is away: ${msg.params[2] || ""}`);
      return;
    }
    const buf = client.state.get(msg.params[1]);
    if (buf) client.info(buf, `${msg.params[1]} is away: ${msg.params[2] || ""}`);
  },
  "305"(client, msg) {
    client.away = false;
    client.info(client.state.active || client.state.server, msg.params[1] || "You are no longer away");
    client.ui.away?.(false);
  },
  "306"(client, msg) {
    client.away = true;
    client.info(client.state.active || client.state.server, msg.params[1] || "You are away");
    client.ui.away?.(true);
  },
  "311"(client, msg) {
    client.whois = [`${msg.params[1]} is ${msg.params[2]}@${msg.params[3]} (${msg.params[5] || ""})`];
  },
  "318"(client) {
    const lines = client.whois || [];
    client.whois = null;
    const buf = client.state.active || client.state.server;
    for (const line of lines) client.info(buf, line);
    client.info(buf, "End of WHOIS");
  },
  "321"(client) {
    client.listing = [];
  },
  "322"(client, msg) {
    (client.listing ||= []).push({ name: msg.params[1], users: Number(msg.params[2]) || 0, topic: msg.params[3] || "" });
  },
  "323"(client) {
    const channels = client.listing || [];
    client.listing = null;
    client.ui.list?.(channels);
  },
  "730"(client, msg) {
    for (const item of (msg.params[1] || "").split(",")) {
      const buf = client.state.get(item.split("!")[0]);
      if (buf && buf.kind === "query") buf.online = true;
    }
    client.state.emit("buffers");
  },
  "731"(client, msg) {
    for (const item of (msg.params[1] || "").split(",")) {
      const buf = client.state.get(item.split("!")[0]);
      if (buf && buf.kind === "query") buf.online = false;
    }
    client.state.emit("buffers");
  },
  "732"() {},
  "733"() {},
  "734"() {},
  MARKREAD(client, msg) {
    const buf = client.state.get(msg.params[0] || "");
    const value = msg.params[1] || "*";
    if (!buf || !value.startsWith("timestamp=")) return;
    const t = parseTime(value.slice(10));
    if (Number.isNaN(t) || t <= buf.readMarker) return;
    buf.readMarker = t;
    buf.markerSent = Math.max(buf.markerSent, t);
    buf.recount();
    client.state.emit("unread", buf);
  },
  REDACT(client, msg) {
    const [target, msgid, reason] = msg.params;
    const bufName = client.isChannel(target) ? target : client.isMe(msg.nick) ? target : msg.nick;
    const buf = client.state.get(bufName);
    client.history.redact(buf, msgid, msg.nick, reason);
  },
  METADATA(client, msg) {
    const [target, key, , value] = msg.params;
    client.ui.metadata?.(target, key, value ?? null);
  },
  "761"(client, msg) {
    const [, target, key, , value] = msg.params;
    client.ui.metadata?.(target, key, value ?? null);
  },
  "766"() {},
  "770"() {},
  "774"() {},
};

for (const code of WHOIS) {
  HANDLERS[code] = (client, msg) => {
    const text = code === "319" ? `${msg.params[1]} is in ${msg.params[2]}`
      : code === "312" ? `${msg.params[1]} is on ${msg.params[2]} (${msg.params[3] || ""})`
        : code === "330" ? `${msg.params[1]} is logged in as ${msg.params[2]}`
          : code === "317" ? `${msg.params[1]} has been idle ${msg.params[2]} s`
            : msg.params.slice(1).join(" ");
    if (client.whois) client.whois.push(text);
    else client.info(client.state.active || client.state.server, text);
  };
}

// Error numerics answering a labeled line mark that line as not sent.
for (const code of ["401", "403", "404", "407", "411", "412", "413", "414", "417", "442", "451", "461", "477", "482", "471", "473", "474", "475", "476", "405", "437", "421", "481", "502"]) {
  HANDLERS[code] = (client, msg, ctx) => {
    const text = msg.params.slice(1).join(": ");
    showError(client, msg, ctx, text);
    if (["471", "473", "474", "475", "403", "405", "476"].includes(code)) {
      const buf = client.state.get(msg.params[1] || "");
      if (buf && buf.kind === "channel" && !buf.joined) {
        buf.parted = true;
        client.info(buf, `Cannot join ${msg.params[1]}: ${msg.params[2] || ""}`, "error");
      }
    }
  };
}
