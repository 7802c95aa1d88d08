// Two dialogs: the buffer finder (Ctrl+K: fuzzy match, arrows, Enter; "#name" offers to join)
// and the channel list (LIST, filtered as you type).

import { stripFormatting } from "./irc.js";
import { el } from "./text.js";

const $ = (id) => document.getElementById(id);

/** Fuzzy score of `query` in `text` (subsequence; earlier and tighter is better), or -1. */
export function fuzzyScore(query, text) {
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  if (!q) return 0;
  let score = 0;
  let ti = 0;
  let last = -1;
  for (const c of q) {
    const found = t.indexOf(c, ti);
    if (found < 0) return -1;
    score += found === last + 1 ? 3 : 1;
    if (found === 0) score += 2;
    last = found;
    ti = found + 1;
  }
  return score - t.length * 0.01;
}

export class Finder {
  constructor(app) {
    this.app = app;
    this.dialog = $("finder");
    this.input = $("finder-input");
    this.list = $("finder-list");
    this.items = [];
    this.index = 0;
    this.input.addEventListener("input", () => this.render());
    this.input.addEventListener("keydown", (ev) => this.key(ev));
    this.dialog.addEventListener("close", () => $("input").focus());
  }

  open(prefill) {
    this.input.value = prefill;
    this.render();
    this.dialog.showModal();
    this.input.focus();
  }

  render() {
    const q = this.input.value.trim();
    const buffers = this.app.state.ordered().filter((b) => b.kind !== "server" || !q);
    const scored = buffers.map((b) => ({ b, s: fuzzyScore(q, b.name) })).filter((x) => x.s >= 0)
      .sort((a, b) => b.s - a.s || b.b.unread - a.b.unread);
    this.items = scored.map((x) => ({ label: x.b.kind === "server" ? "Server messages" : x.b.name, buffer: x.b, unread: x.b.unread }));
    const client = this.app.client;
    if (q && client && !this.app.state.get(q) && /^[^\s,]+$/.test(q)) {
      if (client.isChannel(q)) this.items.push({ label: `Join ${q}`, join: q });
      else if (q.length > 1 && !q.startsWith("#")) this.items.push({ label: `Message ${q}`, query: q });
    }
    this.index = 0;
    this.paint();
  }

  paint() {
    this.list.replaceChildren(...this.items.map((item, i) => {
      const li = el("li", { role: "option", id: `finder-${i}`, class: i === this.index ? "selected" : "",
        "aria-selected": i === this.index ? "true" : "false" },
      el("span", { text: item.label }), item.unread ? el("span", { class: "count", text: String(item.unread) }) : null);
      li.addEventListener("click", () => this.choose(i));
      return li;
    }));
    this.input.setAttribute("aria-activedescendant", this.items.length ? `finder-${this.index}` : "");
  }

  key(ev) {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      const n = this.items.length;
      if (n) this.index = (this.index + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.paint();
      ev.preventDefault();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      this.choose(this.index);
    }
  }

  choose(i) {
    const item = this.items[i];
    this.dialog.close();
    if (!item) return;
    if (item.buffer) this.app.select(item.buffer, { closeDrawer: true });
    else if (item.join) {
      this.app.pendingSelect = item.join;
      const buf = this.app.state.add(item.join, "channel");
      buf.parted = false;
      this.app.client.send(`JOIN ${item.join}`);
      this.app.select(buf, { closeDrawer: true });
    } else if (item.query) this.app.openBuffer(item.query, true);
  }
}

export class ChannelList {
  constructor(app) {
    this.app = app;
    this.dialog = $("channels");
    this.filter = $("channels-filter");
    this.body = $("channels-list");
    this.channels = null;
    this.filter.addEventListener("input", () => this.render());
    $("channels-close").addEventListener("click", () => this.dialog.close());
  }

  open(filter) {
    this.filter.value = filter;
    this.channels = null;
    this.render();
    if (!this.dialog.open) this.dialog.showModal();
    this.filter.focus();
  }

  show(channels) {
    this.channels = channels.sort((a, b) => b.users - a.users || a.name.localeCompare(b.name));
    if (this.dialog.open) this.render();
  }

  render() {
    if (!this.channels) {
      this.body.replaceChildren(el("li", { class: "empty", text: this.app.client?.connected ? "Loading…" : "Not connected" }));
      return;
    }
    const q = this.filter.value.trim().toLowerCase();
    const shown = this.channels.filter((c) => !q || c.name.toLowerCase().includes(q) || c.topic.toLowerCase().includes(q));
    if (!shown.length) {
      this.body.replaceChildren(el("li", { class: "empty", text: "No channels" }));
      return;
    }
    this.body.replaceChildren(...shown.slice(0, 500).map((c) => {
      const join = el("button", { type: "button", text: this.app.state.get(c.name)?.joined ? "Open" : "Join" });
      join.addEventListener("click", () => {
        this.dialog.close();
        this.app.send(`/join ${c.name}`);
      });
      return el("li", { class: "channel-row" },
        el("div", { class: "channel-info" },
          el("span", { class: "name", text: c.name }),
          el("span", { class: "users", text: `${c.users} ${c.users === 1 ? "user" : "users"}` }),
          el("span", { class: "topic", text: stripFormatting(c.topic) })),
        join);
    }));
  }
}
