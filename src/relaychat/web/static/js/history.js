// History through IRCv3 chathistory (https://ircv3.net/specs/extensions/chathistory):
// LATEST when a buffer opens, BEFORE for earlier pages as the user scrolls up, AFTER from the
// last msgid seen after a reconnect (paged until a short page, so there is no gap), and
// TARGETS to find private conversations that happened while away. Every message is inserted
// through Buffer.insert, which drops a msgid already present: a message arrives once.

import { build, formatTime } from "./irc.js";
import { routeMessage } from "./handlers.js";

const PAGE = 50;
const STORE_KEY = "relaychat.seen";

export class History {
  constructor(client) {
    this.client = client;
    this.reset();
  }

  reset() {
    this.byLabel = new Map();
    this.byTarget = new Map(); // casefolded target -> [request] (answers come in order)
  }

  get enabled() {
    return this.client.has("draft/chathistory") && this.client.has("batch");
  }

  maxPage() {
    const n = Number(this.client.isupport.get("CHATHISTORY") || 0);
    return n > 0 ? Math.min(n, 100) : 100;
  }

  /** Send one CHATHISTORY request for `buf`; mode is latest | before | after. */
  request(buf, mode, ref, limit = Math.min(PAGE, this.maxPage())) {
    if (!this.enabled || !this.client.connected) return false;
    const sub = mode.toUpperCase();
    const label = this.client.has("labeled-response") ? this.client.newLabel() : null;
    const req = { buf, mode, limit, label, since: buf.history.since || 0 };
    buf.history.loading = true;
    if (label) this.byLabel.set(label, req);
    const key = this.client.casefold(buf.name);
    if (!this.byTarget.has(key)) this.byTarget.set(key, []);
    this.byTarget.get(key).push(req);
    this.client.send(build("CHATHISTORY", [sub, buf.name, ref, String(limit)], label ? { label } : null));
    this.client.state.emit("history-state", buf);
    return true;
  }

  /** Our JOIN of a channel arrived: its last lines, or what was missed since the last one seen. */
  joined(buf) {
    this.resume(buf);
  }

  resume(buf) {
    if (!this.enabled) return;
    const last = buf.lastServerMessage();
    if (last) this.request(buf, "after", `msgid=${last.msgid}`, this.maxPage());
    else this.request(buf, "latest", "*");
  }

  resumeQueries(queries) {
    for (const buf of queries) {
      if (this.client.has("draft/read-marker")) this.client.send(build("MARKREAD", [buf.name]));
      this.resume(buf);
    }
  }

  /** Open a query that had no buffer yet (a message arrived, or the user opened it). */
  opened(buf) {
    if (this.client.has("draft/read-marker")) this.client.send(build("MARKREAD", [buf.name]));
    if (!buf.history.loaded && !buf.history.loading) this.resume(buf);
  }

  /** Earlier lines for a buffer the user scrolled to the top of. */
  loadEarlier(buf) {
    if (!this.enabled || buf.history.loading || buf.history.complete || buf.kind === "server") return false;
    const first = buf.firstServerMessage();
    if (!first) return this.request(buf, "latest", "*");
    return this.request(buf, "before", `msgid=${first.msgid}`);
  }

  /** Ask which conversations had messages since we were last connected. */
  discoverTargets() {
    if (!this.enabled) return;
    const since = Number(localStorage.getItem(STORE_KEY) || 0);
    this.targetsSince = since;
    const now = Date.now() + 86_400_000;
    this.client.send(build("CHATHISTORY", ["TARGETS", `timestamp=${formatTime(since)}`,
      `timestamp=${formatTime(now)}`, "50"]));
  }

  /** Remember how far we have seen (for TARGETS after a reload). */
  seen(time) {
    const prev = Number(localStorage.getItem(STORE_KEY) || 0);
    if (time > prev) localStorage.setItem(STORE_KEY, String(time));
  }

  targetsDone(batch) {
    const client = this.client;
    for (const item of batch.items) {
      if (item.command !== "CHATHISTORY" || item.params[0] !== "TARGETS") continue;
      const name = item.params[1];
      if (!name || client.isChannel(name) || client.state.get(name)) continue;
      const buf = client.state.add(name, "query");
      buf.history.since = this.targetsSince || 0;
      buf.readMarker = this.targetsSince || 0;
      client.monitorAdd([name]);
      this.opened(buf);
    }
  }

  takeRequest(batchTarget, label) {
    let req = null;
    if (label && this.byLabel.has(label)) {
      req = this.byLabel.get(label);
      this.byLabel.delete(label);
    }
    const key = this.client.casefold(req ? req.buf.name : batchTarget || "");
    const queue = this.byTarget.get(key) || [];
    if (req) {
      const i = queue.indexOf(req);
      if (i >= 0) queue.splice(i, 1);
    } else {
      req = queue.shift() || null;
      if (req?.label) this.byLabel.delete(req.label);
    }
    return req;
  }

  /** A chathistory batch ended. */
  batchDone(batch) {
    const client = this.client;
    const req = this.takeRequest(batch.params[0], batch.tags.label);
    const buf = req ? req.buf : client.state.get(batch.params[0] || "");
    if (!buf) return;
    let count = 0;
    let newest = 0;
    const older = req?.mode === "before";
    // An earlier page goes in newest first, each before what is there (same-millisecond order).
    for (const item of older ? [...batch.items].reverse() : batch.items) {
      if (item.command === "REDACT") {
        this.redact(buf, item.params[1], item.nick, item.params[2]);
        continue;
      }
      if (item.command !== "PRIVMSG" && item.command !== "NOTICE") continue;
      count += 1;
      const routed = routeMessage(client, item, buf.name);
      if (!routed) continue;
      const { entry } = routed;
      if (buf.redacted?.has(entry.msgid)) continue;
      newest = Math.max(newest, entry.time);
      if (entry.self && client.confirmOwn(buf, item, entry, null)) continue;
      buf.insert(entry, { older });
    }
    buf.history.loading = false;
    buf.history.loaded = true;
    const mode = req ? req.mode : "after";
    if (mode !== "after" && count < (req ? req.limit : PAGE)) buf.history.complete = true;
    // The first page of a buffer never read anywhere (no marker from the server or this
    // browser) counts as read: only what comes after it is new.
    if (mode === "latest" && !req?.since && buf.readMarker === 0) {
      const stored = client.ui.storedMarker?.(buf);
      buf.readMarker = Math.max(buf.readMarker, stored || newest);
    }
    if (newest) this.seen(newest);
    buf.recount();
    client.state.emit("history", buf, { mode, count });
    if (mode === "after" && req && count >= req.limit) {
      this.resume(buf); // a full page: there may be more
      return;
    }
    if (mode !== "before") client.settleUnconfirmed(buf);
  }

  failed(msg, ctx) {
    const target = msg.params[3] || msg.params[2] || "";
    const req = this.takeRequest(target, ctx.label);
    if (!req) return;
    const buf = req.buf;
    buf.history.loading = false;
    if (req.mode === "after") {
      // the msgid is unknown here (history pruned): start again from the latest lines
      const last = buf.lastServerMessage();
      if (last && !req.byTime) {
        if (this.request(buf, "after", `timestamp=${formatTime(last.time)}`, this.maxPage())) {
          this.byTarget.get(this.client.casefold(buf.name)).at(-1).byTime = true;
        }
        return;
      }
    }
    buf.history.complete = req.mode === "before" || buf.history.complete;
    this.client.state.emit("history-state", buf);
  }

  /** A message was redacted (draft/message-redaction): show that it was, not what it said. */
  redact(buf, msgid, by, reason) {
    if (!buf || !msgid) return;
    (buf.redacted ||= new Set()).add(msgid);
    const entry = buf.findMsgid(msgid);
    if (!entry) return;
    entry.redacted = { by, reason: reason || "" };
    entry.text = "";
    this.client.state.emit("message-changed", buf, { entry });
  }
}
