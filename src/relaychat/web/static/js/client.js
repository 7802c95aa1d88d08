// The IRC session over the WebSocket: CAP LS 302 negotiation, SASL PLAIN, REGISTER
// (draft/account-registration), ISUPPORT, batches, labeled-response, and sending with an outbox:
// a line typed while offline is queued and sent once when the session is back; a line sent
// with echo-message stays "pending" until the server's echo confirms it.
// Incoming commands are handled in handlers.js, history in history.js.

import { Connection, defaultUrl } from "./connection.js";
import { base64Utf8, build, byteLength, makeCasefold, parse, parseCapValue,
  parsePrefixToken, splitBytes } from "./irc.js";
import { HANDLERS, routeMessage } from "./handlers.js";
import { History } from "./history.js";
import { nextId } from "./state.js";

/** Capabilities the client uses when the server offers them. */
export const WANTED_CAPS = [
  "account-notify", "account-tag", "away-notify", "batch", "cap-notify", "chghost",
  "echo-message", "extended-join", "invite-notify", "labeled-response", "message-tags",
  "multi-prefix", "server-time", "setname", "standard-replies", "userhost-in-names",
  "draft/chathistory", "draft/multiline", "draft/read-marker", "draft/message-redaction",
  "draft/metadata-2", "extended-monitor", "draft/channel-rename", "relaychat.dev/idempotency",
];

/** relaychat's exactly-once delivery (docs/delivery.md): a key per line, kept across resends. */
export const IDEM_CAP = "relaychat.dev/idempotency";
const IDEM_TAG = "+relaychat.dev/idem";
const IDEM_TOKEN = "relaychat.idem-token";

/** A new idempotency key: 48 bits of milliseconds then 80 random bits, base64url (22 chars). */
export function idemKey(now = Date.now()) {
  const bytes = new Uint8Array(16);
  let t = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = t % 256;
    t = Math.floor(t / 256);
  }
  crypto.getRandomValues(bytes.subarray(6));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Room for our prefix (":nick!user@host ") and the command around the text of one line. */
const LINE_BYTES = 510;

export class Client {
  /**
   * @param state the State (buffers)
   * @param settings {nick, password, register, email, channels, realname}
   * @param ui callbacks: status(info), notify(kind, buffer, message), loginFailed(text),
   *   list(event, data), whois(lines)
   */
  constructor(state, settings, ui, url = defaultUrl()) {
    this.state = state;
    this.settings = settings;
    this.ui = ui;
    this.conn = new Connection(url, {
      onConnecting: (attempt) => this.setStatus("connecting", { attempt }),
      onOpen: () => this.opened(),
      onLine: (line) => this.received(line),
      onClose: (info) => this.closed(info),
    });
    this.history = new History(this);
    this.labelSeq = 0;
    this.pendingByLabel = new Map(); // label -> {buffer, entries, kind}
    this.outbox = []; // {buffer, entry, text, kind, multiline}
    this.status = { state: "idle" };
    this.resetSession();
    this.preferredNick = settings.nick; // what /nick last chose; tried first on a reconnect
    this.onOutboxChange = null; // the UI keeps the outbox across page loads
  }

  resetSession() {
    this.registered = false;
    this.registerSent = false;
    this.idemAsked = false;
    this.capsOffered = new Map();
    this.caps = new Set();
    this.capLsDone = false;
    this.saslState = null;
    this.isupport = new Map();
    this.prefix = { modes: "ov", symbols: "@+" };
    this.chantypes = "#&";
    this.batches = new Map();
    this.me = this.settings.nick;
    this.monitor = false;
    this.whois = null;
    this.listing = null;
    for (const w of this.tokenWaiters || []) w.reject(new Error("the connection was lost"));
    this.tokenWaiters = []; // TOKEN GENERATE FILEHOST requests, answered in order
    this.history.reset();
    for (const buf of this.state.buffers.values()) {
      buf.joined = false;
      buf.typing.clear();
    }
  }

  start() {
    this.conn.start();
  }

  quit(reason = "") {
    if (this.conn.isOpen) this.send(build("QUIT", [reason || "Leaving"]));
    setTimeout(() => this.conn.stop("quit"), 200);
    this.setStatus("stopped", { reason: "you quit" });
  }

  setStatus(state, detail = {}) {
    this.status = { state, ...detail };
    this.ui.status(this.status);
  }

  get connected() {
    return this.registered && this.conn.isOpen;
  }

  has(cap) {
    return this.caps.has(cap);
  }

  casefold(s) {
    return this.state.casefold(s);
  }

  isMe(nick) {
    return nick && this.casefold(nick) === this.casefold(this.me);
  }

  isChannel(name) {
    return name.length > 0 && this.chantypes.includes(name[0]);
  }

  send(line) {
    return this.conn.send(line);
  }

  newLabel() {
    this.labelSeq += 1;
    return `w${this.labelSeq}`;
  }

  // --- connection life -----------------------------------------------------------------------

  opened() {
    this.resetSession();
    this.tryNick = this.preferredNick;
    this.nickSuffix = 0;
    this.setStatus("registering");
    this.send("CAP LS 302");
    this.send(build("NICK", [this.tryNick]));
    this.send(build("USER", [this.settings.nick.replace(/[^A-Za-z0-9_-]/g, "") || "web", "0", "*",
      this.settings.realname || this.settings.nick]));
  }

  closed(info) {
    const wasRegistered = this.registered;
    this.registered = false;
    const inDoubt = [];
    for (const p of this.pendingByLabel.values()) {
      for (const e of p.entries) {
        e.status = "unconfirmed";
        // with a key, it is written again with the same key: the server relays it only if it
        // never did (and answers with the first echo if it did)
        if (e.idem) inDoubt.push({ buffer: p.buffer, entry: e });
      }
    }
    this.outbox = [...inDoubt, ...this.outbox];
    if (inDoubt.length) this.onOutboxChange?.();
    this.pendingByLabel.clear();
    for (const buf of this.state.buffers.values()) {
      buf.joined = false;
      for (const m of buf.messages) if (m.local && m.status === "pending") m.status = "unconfirmed";
    }
    this.state.emit("messages-all");
    if (this.status.state === "stopped" || this.status.state === "failed") return;
    this.setStatus("waiting", { reason: info.reason, delay: info.delay, attempt: info.attempt,
      retryAt: Date.now() + info.delay, wasRegistered });
  }

  received(line) {
    const msg = parse(line);
    if (!msg) return;
    const ref = msg.tags.batch;
    if (msg.command === "BATCH") {
      this.batchLine(msg); // a nested batch starts (or ends) inside its parent
      return;
    }
    if (ref && this.batches.has(ref)) {
      this.batches.get(ref).items.push(msg);
      return;
    }
    this.dispatch(msg, null);
  }

  /** Handle one message (live, or from a labeled-response batch). */
  dispatch(msg, label) {
    if (msg.command === "BATCH") {
      this.batchLine(msg);
      return;
    }
    const handler = HANDLERS[msg.command] || this[`on${msg.command}`];
    const ctx = { label: msg.tags.label || label || null };
    if (handler) handler.call(this, this, msg, ctx);
    else if (/^\d{3}$/.test(msg.command)) this.numericFallback(msg, ctx);
  }

  batchLine(msg) {
    const ref = msg.params[0] || "";
    if (ref.startsWith("+")) {
      const batch = { ref: ref.slice(1), type: msg.params[1] || "", params: msg.params.slice(2),
        tags: msg.tags, source: msg.source, nick: msg.nick, items: [], parent: msg.tags.batch || null };
      this.batches.set(batch.ref, batch);
      return;
    }
    const batch = this.batches.get(ref.slice(1));
    if (!batch) return;
    this.batches.delete(batch.ref);
    let result = null;
    if (batch.type === "draft/multiline") result = this.joinMultiline(batch);
    if (batch.parent && this.batches.has(batch.parent)) {
      const parent = this.batches.get(batch.parent);
      if (result) parent.items.push(result);
      else parent.items.push(...batch.items);
      return;
    }
    switch (batch.type) {
      case "chathistory":
        this.history.batchDone(batch);
        break;
      case "draft/chathistory-targets":
        this.history.targetsDone(batch);
        break;
      case "draft/multiline":
        if (result) this.dispatch(result, null);
        break;
      case "labeled-response":
        for (const item of batch.items) this.dispatch(item, batch.tags.label || null);
        if (batch.tags.label) this.labelDone(batch.tags.label);
        break;
      default:
        for (const item of batch.items) this.dispatch(item, null);
    }
  }

  /** A draft/multiline batch -> one PRIVMSG/NOTICE whose text holds newlines. */
  joinMultiline(batch) {
    const lines = batch.items.filter((m) => m.command === "PRIVMSG" || m.command === "NOTICE");
    if (!lines.length) return null;
    let text = "";
    lines.forEach((m, i) => {
      const t = m.params[1] || "";
      if (i === 0) text = t;
      else if ("draft/multiline-concat" in m.tags) text += t;
      else text += `\n${t}`;
    });
    const first = lines[0];
    const tags = { ...first.tags, ...batch.tags };
    delete tags.batch;
    if (batch.parent) tags.batch = batch.parent;
    return { ...first, tags, params: [batch.params[0] || first.params[0], text], multiline: true };
  }

  // --- registration ---------------------------------------------------------------------------

  onCAP(client, msg) {
    const sub = (msg.params[1] || "").toUpperCase();
    const more = msg.params[2] === "*";
    const list = (more ? msg.params[3] : msg.params[2]) || "";
    if (sub === "LS" || sub === "NEW") {
      for (const item of list.split(" ").filter(Boolean)) {
        const eq = item.indexOf("=");
        this.capsOffered.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? "" : item.slice(eq + 1));
      }
      if (sub === "LS" && more) return;
      const names = list.split(" ").filter(Boolean).map((i) => i.split("=")[0]);
      const want = (sub === "LS" ? [...this.capsOffered.keys()] : names)
        .filter((c) => WANTED_CAPS.includes(c) && !this.caps.has(c));
      if (this.settings.password && this.capsOffered.has("sasl") && sub === "LS"
          && !this.settings.register) want.push("sasl");
      if (sub === "LS") this.capLsDone = true;
      this.requestCaps(want);
      if (!want.length && sub === "LS") this.capEnd();
    } else if (sub === "ACK") {
      for (const c of list.split(" ").filter(Boolean)) {
        if (c.startsWith("-")) this.caps.delete(c.slice(1));
        else this.caps.add(c);
      }
      this.capReqOutstanding -= 1;
      if (this.capReqOutstanding <= 0 && !this.registered) this.afterCaps();
    } else if (sub === "NAK") {
      this.capReqOutstanding -= 1;
      if (this.capReqOutstanding <= 0 && !this.registered) this.afterCaps();
    } else if (sub === "DEL") {
      for (const c of list.split(" ").filter(Boolean)) {
        this.caps.delete(c);
        this.capsOffered.delete(c);
      }
      this.state.emit("caps");
    }
    if (this.registered) this.state.emit("caps");
  }

  requestCaps(want) {
    // Several CAP REQ lines when one would be over the line limit.
    this.capReqOutstanding = 0;
    let chunk = [];
    const flush = () => {
      if (!chunk.length) return;
      this.capReqOutstanding += 1;
      this.send(`CAP REQ :${chunk.join(" ")}`);
      chunk = [];
    };
    for (const c of want) {
      if (byteLength(`CAP REQ :${[...chunk, c].join(" ")}`) > 400) flush();
      chunk.push(c);
    }
    flush();
  }

  afterCaps() {
    if (this.saslState === "done") return;
    const s = this.settings;
    if (this.caps.has(IDEM_CAP) && !this.idemAsked) {
      // the identity behind our keys, the same across reconnects and reloads
      this.idemAsked = true;
      const token = localStorage.getItem(IDEM_TOKEN);
      this.send(token ? build("IDEM", ["TOKEN", token]) : "IDEM TOKEN");
    }
    if (s.password && s.register) {
      const reg = parseCapValue(this.capsOffered.get("draft/account-registration"));
      if (this.capsOffered.has("draft/account-registration") && "before-connect" in reg) {
        this.saslState = "done";
        this.registerSent = true;
        this.send(build("REGISTER", [s.nick, s.email || "*", s.password]));
        return; // CAP END after REGISTER SUCCESS
      }
    } else if (s.password && this.caps.has("sasl")) {
      this.saslState = "plain";
      this.send("AUTHENTICATE PLAIN");
      return;
    } else if (s.password) {
      this.info(this.state.server, "This server offers no SASL login: connected without your account", "error");
    }
    this.saslState = "done";
    this.capEnd();
  }

  capEnd() {
    if (!this.registered) this.send("CAP END");
  }

  onAUTHENTICATE(client, msg) {
    if (msg.params[0] !== "+" || this.saslState !== "plain") return;
    const s = this.settings;
    const payload = base64Utf8(`${s.nick}\0${s.nick}\0${s.password}`);
    // SASL 3.1: chunks of 400 bytes, an empty "+" after an exact multiple.
    for (let i = 0; i < payload.length; i += 400) this.send(`AUTHENTICATE ${payload.slice(i, i + 400)}`);
    if (payload.length % 400 === 0) this.send("AUTHENTICATE +");
    this.saslState = "sent";
  }

  loginFailed(text) {
    this.setStatus("failed", { reason: text });
    this.conn.stop("login failed");
    this.ui.loginFailed(text);
  }

  welcome(msg) {
    this.registered = true;
    this.me = msg.params[0] || this.me;
    this.conn.resetBackoff();
  }

  /** End of MOTD (or no MOTD): the session is ready; rejoin, resume history, flush the outbox. */
  ready() {
    if (this.status.state === "connected") return;
    this.setStatus("connected", { nick: this.me });
    const s = this.settings;
    if (s.password && s.register && !this.registerSent) {
      // no before-connect: REGISTER once connected (account-registration)
      this.registerSent = true;
      this.send(build("REGISTER", [this.me, s.email || "*", s.password]));
    }
    if (this.has("draft/metadata-2")) this.send(build("METADATA", ["*", "SUB", "display-name"]));
    const channels = [];
    for (const buf of this.state.buffers.values()) {
      if (buf.kind === "channel" && !buf.parted) channels.push(buf.name);
    }
    this.joinChannels(channels);
    const queries = [...this.state.buffers.values()].filter((b) => b.kind === "query");
    this.monitorAdd(queries.map((b) => b.name));
    this.history.resumeQueries(queries);
    this.history.discoverTargets();
    this.flushOutbox((b) => b.kind !== "channel");
    this.state.emit("caps");
  }

  joinChannels(names) {
    let chunk = [];
    for (const n of names) {
      if (chunk.length && byteLength(`JOIN ${[...chunk, n].join(",")}`) > 400) {
        this.send(build("JOIN", [chunk.join(",")]));
        chunk = [];
      }
      chunk.push(n);
    }
    if (chunk.length) this.send(build("JOIN", [chunk.join(",")]));
  }

  monitorAdd(nicks) {
    if (!this.monitor || !nicks.length) return;
    this.send(build("MONITOR", ["+", nicks.join(",")]));
  }

  numericFallback(msg) {
    const text = msg.params.slice(1).join(" ");
    const code = Number(msg.command);
    const kind = code >= 400 && code < 600 ? "error" : "info";
    const target = code >= 400 && code < 600 ? this.state.active || this.state.server : this.state.server;
    this.info(target, text, kind);
  }

  /** A line of information (not conversation) in a buffer. */
  info(buf, text, kind = "info", time = Date.now()) {
    const entry = { id: nextId(), time, kind, text, nick: "" };
    const where = buf.insert(entry);
    this.state.emit("message", buf, { entry, where });
    return entry;
  }

  // --- sending ---------------------------------------------------------------------------------

  /** Room for the text of one PRIVMSG/NOTICE to `target`. */
  textBudget(command, target) {
    const prefix = 1 + byteLength(this.me) + 1 + 10 + 1 + 63 + 1; // ":nick!user@host "
    return LINE_BYTES - prefix - byteLength(`${command} ${target} :`);
  }

  /**
   * Send a message to a buffer (or queue it while offline). Returns the local entries shown.
   * kind: "message" | "action" | "notice".
   */
  say(buf, text, kind = "message") {
    // One message when the server takes draft/multiline (long lines joined with -concat);
    // else one message per non-blank line, each cut to fit an IRC line.
    let pieces = [text];
    if (!this.canMultiline(buf.name, text)) {
      const command = kind === "notice" ? "NOTICE" : "PRIVMSG";
      const budget = this.textBudget(command, buf.name) - (kind === "action" ? 9 : 0);
      pieces = text.split("\n").filter((l) => l.trim()).flatMap((l) => splitBytes(l, budget));
    }
    const entries = [];
    for (const piece of pieces) {
      const entry = { id: nextId(), time: Date.now(), kind, text: piece, nick: this.me, self: true,
        local: true, status: this.connected ? "pending" : "queued" };
      const where = buf.insert(entry);
      this.state.emit("message", buf, { entry, where });
      entries.push(entry);
      const item = { buffer: buf, entry };
      if (this.connected && (buf.kind !== "channel" || buf.joined)) this.transmit(item);
      else this.outbox.push(item);
    }
    this.onOutboxChange?.();
    return entries;
  }

  canMultiline(target, text) {
    if (!this.has("draft/multiline") || !this.has("batch")) return false;
    const v = parseCapValue(this.capsOffered.get("draft/multiline"));
    const lines = text.split("\n");
    if (v["max-lines"] && lines.length > Number(v["max-lines"])) return false;
    if (v["max-bytes"] && byteLength(text) > Number(v["max-bytes"])) return false;
    return true;
  }

  /** Put one outbox item on the wire. */
  transmit(item) {
    const { buffer, entry } = item;
    if (entry.idem && !this.has(IDEM_CAP)) return; // in doubt: only history can tell now
    if (entry.status === "sent" || (!entry.local && entry.msgid)) return; // confirmed meanwhile
    const command = entry.kind === "notice" ? "NOTICE" : "PRIVMSG";
    const body = entry.kind === "action" ? `\x01ACTION ${entry.text}\x01` : entry.text;
    const echo = this.has("echo-message");
    const label = echo && this.has("labeled-response") ? this.newLabel() : null;
    entry.status = echo ? "pending" : "sent";
    entry.sentAt = Date.now();
    const budget = this.textBudget(command, buffer.name);
    if (body.includes("\n") || (byteLength(body) > budget && this.canMultiline(buffer.name, body))) {
      const ref = `m${nextId()}`;
      this.send(build("BATCH", [`+${ref}`, "draft/multiline", buffer.name], label ? { label } : null));
      for (const line of body.split("\n")) {
        splitBytes(line, budget).forEach((part, i) => {
          const tags = i === 0 ? { batch: ref } : { batch: ref, "draft/multiline-concat": "" };
          this.send(build(command, [buffer.name, part], tags));
        });
      }
      this.send(build("BATCH", [`-${ref}`]));
      entry.wire = [body];
    } else if (body.includes("\n")) {
      // queued with draft/multiline, which this connection lacks: line by line
      entry.wire = body.split("\n").filter((l) => l.trim());
      entry.wire.forEach((part, i) => this.send(build(command, [buffer.name, part],
        label && i === 0 ? { label } : null)));
    } else {
      const tags = label ? { label } : {};
      if (this.has(IDEM_CAP)) {
        entry.idem ||= idemKey();
        tags[IDEM_TAG] = entry.idem;
      }
      this.send(build(command, [buffer.name, body], tags));
    }
    if (label) this.pendingByLabel.set(label, { buffer, entries: [entry] });
    if (!echo) this.state.emit("message-changed", buffer, { entry });
  }

  /** Send what waited in the outbox for the buffers accepted by `which`. */
  flushOutbox(which) {
    const keep = [];
    for (const item of this.outbox) {
      if (!this.state.buffers.has(item.buffer.key)) continue; // closed meanwhile
      if (this.connected && which(item.buffer)) this.transmit(item);
      else keep.push(item);
    }
    this.outbox = keep;
    this.onOutboxChange?.();
  }

  /** A message of ours came back (echo, or found in history): confirm the local line. */
  confirmOwn(buf, msg, entry, label) {
    let local = null;
    if (label && this.pendingByLabel.has(label)) {
      const p = this.pendingByLabel.get(label);
      this.pendingByLabel.delete(label);
      local = p.entries[0];
    } else {
      const raw = entry.text;
      local = buf.findPending(raw, entry.kind)
        || buf.messages.find((m) => m.local && m.wire && m.wire[0] === raw && m.status !== "failed");
    }
    if (!local || !buf.messages.includes(local)) return false;
    local.local = false;
    local.status = "sent";
    local.msgid = entry.msgid;
    local.time = entry.time;
    if (local.wire && local.wire.length > 1 && !entry.multiline) {
      // sent line by line (no draft/multiline after a reconnect): show what the server has
      local.text = entry.text;
    }
    delete local.wire;
    buf.reposition(local);
    this.state.emit("message-changed", buf, { entry: local, moved: true });
    return true;
  }

  /** An error answering a labeled line: that line was not sent. */
  labelFailed(label, reason) {
    const p = this.pendingByLabel.get(label);
    if (!p) return false;
    this.pendingByLabel.delete(label);
    for (const e of p.entries) {
      e.status = "failed";
      e.error = reason;
      this.state.emit("message-changed", p.buffer, { entry: e });
    }
    return true;
  }

  /** ACK or the end of a labeled-response batch without an echo: sent, nothing to confirm. */
  labelDone(label) {
    const p = this.pendingByLabel.get(label);
    if (!p) return;
    this.pendingByLabel.delete(label);
    for (const e of p.entries) {
      e.status = "sent";
      e.local = false;
      this.state.emit("message-changed", p.buffer, { entry: e });
    }
  }

  /** Lines sent before a disconnect that history did not show: offer them again. */
  settleUnconfirmed(buf) {
    for (const m of buf.messages) {
      if (m.local && m.status === "unconfirmed") {
        m.status = "failed";
        m.error = "not sent: the connection was lost";
        this.state.emit("message-changed", buf, { entry: m });
      }
    }
  }

  /** Send a failed line again (the user asked). */
  retry(buf, entry) {
    const i = buf.messages.indexOf(entry);
    if (i >= 0) buf.messages.splice(i, 1);
    this.state.emit("messages-all", buf);
    this.say(buf, entry.text, entry.kind);
  }

  // --- typing (https://ircv3.net/specs/client-tags/typing) -------------------------------------

  canSendTyping() {
    if (!this.has("message-tags") || !this.connected) return false;
    const deny = (this.isupport.get("CLIENTTAGDENY") || "").split(",");
    if (deny.includes("typing") || deny.includes("+typing")) return false;
    if (deny.includes("*") && !deny.includes("-typing") && !deny.includes("-+typing")) return false;
    return true;
  }

  sendTyping(buf, value) {
    if (!this.canSendTyping() || buf.kind === "server") return;
    if (buf.kind === "channel" && !buf.joined) return;
    this.send(build("TAGMSG", [buf.name], { "+typing": value }));
  }

  // --- uploads (draft/authtoken) ---------------------------------------------------------------

  /** A one-use token to upload as this session's account: {url, token} (upload.js). */
  fileToken() {
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        reject(new Error("not connected"));
        return;
      }
      this.tokenWaiters.push({ resolve, reject });
      this.send("TOKEN GENERATE FILEHOST");
    });
  }

  /** TOKEN GENERATE <service> <url> :<token>, or FAIL TOKEN ...: the oldest request's answer. */
  tokenAnswer(error, url, token) {
    const waiter = this.tokenWaiters.shift();
    if (!waiter) return;
    if (error) waiter.reject(new Error(error));
    else waiter.resolve({ url, token });
  }

  // --- ISUPPORT --------------------------------------------------------------------------------

  isupportToken(token) {
    const neg = token.startsWith("-");
    const eq = token.indexOf("=");
    const name = (neg ? token.slice(1) : eq < 0 ? token : token.slice(0, eq)).toUpperCase();
    if (neg) {
      this.isupport.delete(name);
      return;
    }
    const value = eq < 0 ? "" : token.slice(eq + 1).replace(/\\x([0-9A-Fa-f]{2})/g,
      (_, h) => String.fromCharCode(parseInt(h, 16)));
    this.isupport.set(name, value);
    if (name === "PREFIX") this.prefix = parsePrefixToken(value);
    if (name === "CHANTYPES") this.chantypes = value || "#";
    if (name === "CASEMAPPING") {
      this.state.casefold = makeCasefold(value);
      this.state.rekey();
    }
    if (name === "MONITOR") this.monitor = true;
  }
}
