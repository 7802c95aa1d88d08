// The client's model: buffers (server, channels, private conversations), their messages in time
// order without duplicates, members, unread counts and mentions. No DOM and no sockets here:
// the session (client.js) changes the model, the UI (ui.js) listens to `onChange`.

export const MAX_MESSAGES = 2000;

let seq = 0;
export function nextId() {
  seq += 1;
  return seq;
}

/** Kinds of message rows that count as conversation (unread, read markers). */
const TALK = new Set(["message", "action", "notice"]);

export class Buffer {
  constructor(name, key, kind) {
    this.name = name;
    this.key = key;
    this.kind = kind; // "server" | "channel" | "query"
    this.messages = []; // sorted by (time, id)
    this.msgids = new Set();
    this.members = new Map(); // casefolded nick -> {nick, prefixes, away, user, host, account, bot}
    this.topic = "";
    this.joined = false;
    this.parted = false; // left on purpose: not rejoined on reconnect
    this.unread = 0;
    this.mentions = 0;
    this.readMarker = 0; // ms: messages up to this time are read (draft/read-marker or local)
    this.markerSent = 0;
    this.history = { loading: false, complete: false, loaded: false };
    this.typing = new Map(); // casefolded nick -> {nick, state, until}
    this.online = null; // MONITOR, queries only
    this.draft = "";
  }

  get isChannel() {
    return this.kind === "channel";
  }

  /** The newest message that has a msgid (where a resume starts). */
  lastServerMessage() {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i];
      if (m.msgid && !m.local) return m;
    }
    return null;
  }

  /** The oldest message that has a msgid (where "earlier" pages start). */
  firstServerMessage() {
    for (const m of this.messages) if (m.msgid && !m.local) return m;
    return null;
  }

  latestTalkTime() {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i];
      if (TALK.has(m.kind) && !m.local) return m.time;
    }
    return 0;
  }

  /** Recount unread and mentions from the read marker (messages of others after it). */
  recount() {
    let unread = 0;
    let mentions = 0;
    for (const m of this.messages) {
      if (m.time > this.readMarker && TALK.has(m.kind) && !m.self && !m.local) {
        unread += 1;
        if (m.highlight || this.kind === "query") mentions += 1;
      }
    }
    this.unread = unread;
    this.mentions = mentions;
  }

  /**
   * Insert a message in time order. Returns "append", "insert" or null (a duplicate msgid).
   */
  insert(msg, { older = false } = {}) {
    if (msg.msgid) {
      if (this.msgids.has(msg.msgid)) return null;
      this.msgids.add(msg.msgid);
    }
    if (!msg.id) msg.id = nextId();
    const list = this.messages;
    let where = "append";
    // Messages of the same millisecond keep their arrival order; `older` (a page of earlier
    // history, inserted newest first) goes before the ones already there.
    const last = list.length ? list[list.length - 1].time : -Infinity;
    if (last > msg.time || (older && last === msg.time)) {
      let lo = 0;
      let hi = list.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (older ? list[mid].time < msg.time : list[mid].time <= msg.time) lo = mid + 1;
        else hi = mid;
      }
      list.splice(lo, 0, msg);
      where = "insert";
    } else {
      list.push(msg);
    }
    if (list.length > MAX_MESSAGES) {
      const dropped = list.splice(0, list.length - MAX_MESSAGES);
      for (const d of dropped) if (d.msgid) this.msgids.delete(d.msgid);
      this.history.complete = false;
      where = "insert";
    }
    return where;
  }

  /** Move a message whose time changed (a pending line confirmed by the server's echo). */
  reposition(msg) {
    const i = this.messages.indexOf(msg);
    if (i >= 0) this.messages.splice(i, 1);
    if (msg.msgid) this.msgids.delete(msg.msgid);
    return this.insert(msg);
  }

  findMsgid(msgid) {
    if (!this.msgids.has(msgid)) return null;
    return this.messages.find((m) => m.msgid === msgid) || null;
  }

  /** The first local line of ours still waiting for the server, with this text. */
  findPending(text, kind) {
    return this.messages.find((m) => m.local && m.text === text && m.kind === kind
      && (m.status === "pending" || m.status === "unconfirmed")) || null;
  }

  sortedMembers(symbols) {
    const rank = (p) => {
      if (!p.prefixes) return symbols.length;
      let best = symbols.length;
      for (const c of p.prefixes) best = Math.min(best, symbols.indexOf(c) < 0 ? best : symbols.indexOf(c));
      return best;
    };
    return [...this.members.values()].sort((a, b) =>
      rank(a) - rank(b) || a.nick.toLowerCase().localeCompare(b.nick.toLowerCase()));
  }
}

/** All buffers, in display order: the server buffer, channels, then conversations. */
export class State {
  constructor() {
    this.casefold = (s) => s.toLowerCase();
    this.buffers = new Map();
    this.active = null;
    this.listeners = new Set();
    this.server = this.add("server", "server");
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  emit(what, buffer = null, detail = null) {
    for (const fn of this.listeners) fn(what, buffer, detail);
  }

  keyOf(name) {
    return this.casefold(name);
  }

  add(name, kind) {
    const key = kind === "server" ? "\0server" : this.keyOf(name);
    let buf = this.buffers.get(key);
    if (!buf) {
      buf = new Buffer(name, key, kind);
      this.buffers.set(key, buf);
      this.emit("buffers");
    }
    return buf;
  }

  get(name) {
    return this.buffers.get(this.keyOf(name)) || null;
  }

  /** Re-key every buffer after CASEMAPPING arrives or a query's nick changes. */
  rekey() {
    const entries = [...this.buffers.values()];
    this.buffers.clear();
    for (const b of entries) {
      if (b.kind !== "server") b.key = this.keyOf(b.name);
      this.buffers.set(b.key, b);
    }
  }

  remove(buf) {
    if (buf.kind === "server") return;
    this.buffers.delete(buf.key);
    if (this.active === buf) this.active = null;
    this.emit("buffers");
  }

  /** Buffers in the order shown: server first, then channels, then queries, by name. */
  ordered() {
    const all = [...this.buffers.values()];
    const order = { server: 0, channel: 1, query: 2 };
    return all.sort((a, b) => order[a.kind] - order[b.kind]
      || a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
  }

  setActive(buf) {
    this.active = buf;
    this.emit("active", buf);
  }
}
