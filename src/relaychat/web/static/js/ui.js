// Rendering: the buffer list, the message log, the member list, the topic, the typing line and
// the connection status. DOM is built with createElement/textContent only (text.js).

import { el, nickClass, renderText } from "./text.js";

const $ = (id) => document.getElementById(id);

function hhmm(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

function dayLabel(ms) {
  const d = new Date(ms);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  registering: "Signing in…",
  connected: "Connected",
  waiting: "Reconnecting",
  stopped: "Disconnected",
  failed: "Not signed in",
};

export class UI {
  constructor(app) {
    this.app = app;
    this.log = $("log");
    this.rows = new Map(); // entry id -> row element (active buffer only)
    this.statusTimer = null;
    this.displayNames = new Map();
  }

  get state() {
    return this.app.state;
  }

  // --- buffer list ----------------------------------------------------------------------------

  renderBuffers() {
    const list = $("buffers");
    const active = this.state.active;
    const items = this.state.ordered().map((buf, i) => {
      const label = buf.kind === "server" ? (this.app.client?.isupport.get("NETWORK") || "Server") : buf.name;
      const badge = buf.unread ? el("span", { class: `count${buf.mentions ? " mention" : ""}`,
        text: buf.unread > 99 ? "99+" : String(buf.unread), "aria-label": `${buf.unread} unread` }) : null;
      const classes = ["buffer", `kind-${buf.kind}`];
      if (buf === active) classes.push("active");
      if (buf.unread) classes.push("unread");
      if (buf.mentions) classes.push("mentioned");
      if (buf.kind === "channel" && !buf.joined) classes.push("parted");
      const dot = buf.kind === "query" ? el("span", { class: `presence ${buf.online === false ? "off" : buf.online ? "on" : ""}`,
        "aria-hidden": "true" }) : null;
      const icon = el("span", { class: "icon", "aria-hidden": "true", text: buf.kind === "channel" ? "#" : buf.kind === "query" ? "@" : "⌂" });
      const name = buf.kind === "channel" ? buf.name.replace(/^#/, "") : label;
      const li = el("li", {
        role: "option",
        id: `buf-${i}`,
        class: classes.join(" "),
        "aria-selected": buf === active ? "true" : "false",
        tabindex: "-1",
        "data-key": buf.key,
        title: i < 9 ? `${label} (Alt+${i + 1})` : label,
      }, icon, el("span", { class: "name", text: name }), dot, badge);
      li.addEventListener("click", () => this.app.select(buf, { closeDrawer: true }));
      return li;
    });
    list.replaceChildren(...items);
    const at = this.state.ordered().indexOf(active);
    if (at >= 0) list.setAttribute("aria-activedescendant", `buf-${at}`);
    const total = [...this.state.buffers.values()].reduce((n, b) => n + (b === active ? 0 : b.mentions), 0);
    $("menu-badge").hidden = total === 0;
    $("menu-badge").textContent = total ? String(total) : "";
    document.title = total ? `(${total}) relaychat` : "relaychat";
  }

  // --- header, members, typing ---------------------------------------------------------------------

  renderHeader(buf) {
    const label = buf.kind === "server" ? (this.app.client?.isupport.get("NETWORK") || "Server") : buf.name;
    $("buf-name").textContent = label;
    const topic = $("buf-topic");
    topic.replaceChildren();
    if (buf.kind === "channel") {
      renderText(topic, buf.topic || (buf.joined ? "No topic" : "You are not in this channel"));
      topic.title = buf.topic || "";
    } else if (buf.kind === "query") {
      const dn = this.displayNames.get(this.app.client.casefold(buf.name));
      topic.textContent = [dn, buf.online === false ? "offline" : buf.online ? "online" : "private conversation"]
        .filter(Boolean).join(" · ");
    } else {
      topic.textContent = "Server messages";
    }
    $("input").placeholder = buf.kind === "server" ? "Type /join #channel or /help" : `Message ${label}`;
    $("btn-members").hidden = buf.kind !== "channel";
    document.body.classList.toggle("no-members", buf.kind !== "channel");
  }

  renderMembers(buf) {
    if (buf !== this.state.active) return;
    const list = $("member-list");
    if (buf.kind !== "channel") {
      list.replaceChildren();
      $("members-title").textContent = "";
      return;
    }
    const symbols = this.app.client.prefix.symbols;
    const members = buf.sortedMembers(symbols);
    $("members-title").textContent = `${members.length} member${members.length === 1 ? "" : "s"}`;
    list.replaceChildren(...members.map((m) => {
      const dn = this.displayNames.get(this.app.client.casefold(m.nick));
      const li = el("li", { role: "listitem", class: `member${m.away ? " away" : ""}`,
        title: [m.nick, dn, m.account ? `account ${m.account}` : "", m.away ? "away" : "", m.prefixes ? `prefixes ${m.prefixes}` : ""].filter(Boolean).join(" · ") },
      el("span", { class: "prefix", text: m.prefixes, "aria-label": m.prefixes.includes("@") ? "operator" : m.prefixes ? "voice" : null }),
      el("span", { class: `nick ${nickClass(m.nick)}`, text: m.nick }),
      dn ? el("span", { class: "display-name", text: dn }) : null);
      li.addEventListener("click", () => this.app.openBuffer(m.nick, true));
      return li;
    }));
  }

  renderTyping(buf) {
    if (buf !== this.state.active) return;
    const now = Date.now();
    const who = [];
    for (const [key, t] of buf.typing) {
      if (t.until < now) buf.typing.delete(key);
      else if (t.state === "active") who.push(t.nick);
    }
    const line = $("typing");
    line.textContent = !who.length ? ""
      : who.length === 1 ? `${who[0]} is typing…`
        : who.length <= 3 ? `${who.slice(0, -1).join(", ")} and ${who[who.length - 1]} are typing…`
          : "Several people are typing…";
  }

  // --- status ---------------------------------------------------------------------------------

  renderStatus(status) {
    const box = $("status");
    clearTimeout(this.statusTimer);
    let text = STATUS_TEXT[status.state] || status.state;
    if (status.state === "connected") text = `Connected as ${this.app.client.me}`;
    if (status.state === "waiting") {
      const secs = Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000));
      text = `Reconnecting in ${secs} s (attempt ${status.attempt})`;
      this.statusTimer = setTimeout(() => this.renderStatus(this.app.client.status), 1000);
    }
    if ((status.state === "waiting" || status.state === "stopped" || status.state === "failed") && status.reason) {
      text += ` — ${status.reason}`;
    }
    box.dataset.state = status.state;
    $("status-text").textContent = text;
    box.title = text;
    // the narrow layout shows a shorter word (the full text stays for screen readers)
    $("status-short").textContent = status.state === "connected" ? "Online"
      : status.state === "waiting" ? `Retry ${Math.max(0, Math.ceil((status.retryAt - Date.now()) / 1000))} s`
        : status.state === "stopped" || status.state === "failed" ? "Offline" : "Connecting";
    $("btn-retry").hidden = status.state !== "waiting" && status.state !== "stopped";
    document.body.dataset.conn = status.state;
    const me = $("me");
    if (me) me.textContent = this.app.client?.me || "";
  }

  // --- the log --------------------------------------------------------------------------------

  atBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    $("btn-latest").hidden = true;
  }

  /** Render the whole log of `buf`; keepFromBottom keeps the view where it was (older pages). */
  renderLog(buf, { keepFromBottom = false, stick = null } = {}) {
    const wasBottom = stick ?? this.atBottom();
    const fromBottom = this.log.scrollHeight - this.log.scrollTop;
    this.rows.clear();
    const nodes = [];
    if (buf.history.complete && buf.kind !== "server") {
      nodes.push(el("div", { class: "history-edge", text: buf.kind === "channel" ? `This is the beginning of ${buf.name}` : "This is the beginning of the conversation" }));
    } else if (buf.history.loading) {
      nodes.push(el("div", { class: "history-edge loading", text: "Loading earlier messages…" }));
    }
    let prev = null;
    let unreadShown = false;
    for (const entry of buf.messages) {
      if (!unreadShown && buf.dividerAt && entry.time > buf.dividerAt && !entry.self && entry.kind !== "event" && entry.kind !== "info") {
        nodes.push(el("div", { class: "unread-line", role: "separator", text: "New messages" }));
        unreadShown = true;
      }
      nodes.push(...this.rowWithDay(entry, prev));
      prev = entry;
    }
    this.log.replaceChildren(...nodes);
    $("btn-latest").hidden = true;
    if (keepFromBottom) this.log.scrollTop = this.log.scrollHeight - fromBottom;
    else if (wasBottom) this.scrollToBottom();
  }

  rowWithDay(entry, prev) {
    const out = [];
    if (!prev || new Date(prev.time).toDateString() !== new Date(entry.time).toDateString()) {
      out.push(el("div", { class: "day", role: "separator", text: dayLabel(entry.time) }));
      prev = null;
    }
    const row = this.messageRow(entry, prev);
    this.rows.set(entry.id, row);
    out.push(row);
    return out;
  }

  /** A message appended at the end of the active buffer. */
  append(buf, entry) {
    const stick = this.atBottom() || entry.self;
    const prev = buf.messages[buf.messages.length - 2] || null;
    this.log.append(...this.rowWithDay(entry, prev));
    if (stick) this.scrollToBottom();
    else $("btn-latest").hidden = false; // reading earlier lines: offer a way down
  }

  update(buf, entry) {
    const old = this.rows.get(entry.id);
    if (!old) return;
    const i = buf.messages.indexOf(entry);
    const row = this.messageRow(entry, i > 0 ? buf.messages[i - 1] : null);
    this.rows.set(entry.id, row);
    old.replaceWith(row);
  }

  messageRow(entry, prev) {
    const classes = ["msg", `k-${entry.kind}`];
    if (entry.self) classes.push("self");
    if (entry.highlight) classes.push("highlight");
    if (entry.local) classes.push(`s-${entry.status}`);
    if (entry.status === "failed") classes.push("s-failed");
    if (entry.redacted) classes.push("redacted");
    const sameAuthor = prev && prev.nick === entry.nick && (prev.kind === "message") && entry.kind === "message"
      && entry.time - prev.time < 5 * 60_000 && !prev.redacted;
    if (sameAuthor) classes.push("cont");
    const time = el("time", { datetime: new Date(entry.time).toISOString(), title: new Date(entry.time).toLocaleString(), text: hhmm(entry.time) });
    const row = el("div", { class: classes.join(" "), "data-id": String(entry.id), "data-msgid": entry.msgid || null });
    if (entry.kind === "event" || entry.kind === "info" || entry.kind === "error") {
      const text = el("span", { class: "text" });
      renderText(text, entry.text);
      row.append(time, el("span", { class: "nick sys", "aria-hidden": "true", text: entry.kind === "error" ? "!" : "–" }), text);
      return row;
    }
    const nick = el("span", { class: `nick ${nickClass(entry.nick)}`, text: entry.kind === "action" ? `* ${entry.nick}` : entry.kind === "notice" ? `-${entry.nick}-` : entry.nick });
    const dn = this.displayNames.get(this.app.client.casefold(entry.nick));
    if (dn) nick.title = dn;
    nick.addEventListener("click", () => this.app.insertNick(entry.nick));
    const text = el("span", { class: "text" });
    if (entry.redacted) {
      text.textContent = `message deleted${entry.redacted.by && entry.redacted.by !== entry.nick ? ` by ${entry.redacted.by}` : ""}${entry.redacted.reason ? ` (${entry.redacted.reason})` : ""}`;
    } else {
      renderText(text, entry.text);
    }
    const who = el("span", { class: "who" },
      entry.bot ? el("span", { class: "badge bot", text: "bot", title: "sent by a bot" }) : null, nick);
    row.append(time, who, text);
    if (entry.local || entry.status === "failed") {
      const label = entry.status === "queued" ? "waiting for connection" : entry.status === "failed" ? (entry.error || "not sent") : "sending…";
      row.append(el("span", { class: "send-state", text: label }));
      if (entry.status === "failed") {
        const btn = el("button", { class: "link retry", type: "button", text: "Retry" });
        btn.addEventListener("click", () => this.app.retry(entry));
        row.append(btn);
      }
    }
    if (entry.self && entry.msgid && !entry.redacted && this.app.client.has("draft/message-redaction")) {
      const del = el("button", { class: "link redact", type: "button", text: "Delete", "aria-label": "Delete this message" });
      del.addEventListener("click", () => this.app.redact(entry));
      row.append(del);
    }
    return row;
  }
}
