// The message box: Enter sends (Shift+Enter: a new line; a multi-line paste is one message),
// Up/Down recall earlier lines, Tab completes nicks, #channels and /commands, and typing
// notifications go out as the +typing client tag (https://ircv3.net/specs/client-tags/typing):
// "active" at most every 3 s while typing, "paused" after 6 s without a key, "done" when the
// box is emptied or the buffer left. Sending a message implies done.

import { COMMAND_NAMES } from "./commands.js";

const $ = (id) => document.getElementById(id);
const ACTIVE_EVERY = 3000;
const PAUSE_AFTER = 6000;
const MAX_RECALL = 100;

export class Composer {
  constructor(app) {
    this.app = app;
    this.input = $("input");
    this.recall = [];
    this.recallAt = -1;
    this.completion = null;
    this.typing = { buf: null, state: "done", sentAt: 0, keyAt: 0 };
    this.input.addEventListener("keydown", (ev) => this.key(ev));
    this.input.addEventListener("input", () => this.changed());
    $("input-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
  }

  resize() {
    this.input.rows = Math.min(8, Math.max(1, this.input.value.split("\n").length));
  }

  submit() {
    const text = this.input.value.replace(/\s+$/, "");
    const buf = this.app.state.active;
    if (!text.trim() || !buf) return;
    this.recall.unshift(text);
    if (this.recall.length > MAX_RECALL) this.recall.pop();
    this.recallAt = -1;
    this.input.value = "";
    buf.draft = "";
    this.resize();
    this.typing = { buf: null, state: "done", sentAt: 0, keyAt: 0 }; // a message implies done
    this.app.send(text);
  }

  key(ev) {
    if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.altKey) {
      if (this.complete()) ev.preventDefault();
      return;
    }
    if (ev.key !== "Tab" && ev.key !== "Shift") this.completion = null;
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      this.submit();
    } else if ((ev.key === "ArrowUp" || ev.key === "ArrowDown") && !ev.altKey && !this.input.value.includes("\n")) {
      const next = this.recallAt + (ev.key === "ArrowUp" ? 1 : -1);
      if (next < -1 || next >= this.recall.length) return;
      if (ev.key === "ArrowUp" && this.recallAt === -1 && this.input.value) return;
      this.recallAt = next;
      this.input.value = next < 0 ? "" : this.recall[next];
      ev.preventDefault();
    }
  }

  /** Tab: complete the word before the caret; Tab again cycles through the matches. */
  complete() {
    const input = this.input;
    const buf = this.app.state.active;
    if (!buf) return false;
    if (!this.completion) {
      const caret = input.selectionStart;
      const before = input.value.slice(0, caret);
      const m = /(\S*)$/.exec(before);
      const word = m[1];
      if (!word) return false;
      const start = caret - word.length;
      const lower = word.toLowerCase();
      let candidates;
      if (start === 0 && word.startsWith("/")) {
        candidates = COMMAND_NAMES.map((c) => `/${c}`);
      } else if (this.app.client.isChannel(word)) {
        candidates = [...this.app.state.buffers.values()].filter((b) => b.kind === "channel").map((b) => b.name);
      } else {
        const recent = [];
        for (let i = buf.messages.length - 1; i >= 0 && recent.length < 50; i--) {
          const n = buf.messages[i].nick;
          if (n && !buf.messages[i].self && !recent.includes(n)) recent.push(n);
        }
        const members = buf.kind === "channel" ? buf.sortedMembers("").map((x) => x.nick) : [buf.name];
        candidates = [...recent.filter((n) => buf.kind !== "channel" || buf.members.has(this.app.client.casefold(n))), ...members];
        candidates = candidates.filter((n) => !this.app.client.isMe(n));
      }
      const seen = new Set();
      const matches = candidates.filter((c) => {
        const k = c.toLowerCase();
        if (!k.startsWith(lower) || seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      if (!matches.length) return true;
      this.completion = { start, end: caret, matches, index: -1, after: input.value.slice(caret) };
    }
    const c = this.completion;
    c.index = (c.index + 1) % c.matches.length;
    let word = c.matches[c.index];
    const atStart = c.start === 0 && !word.startsWith("/") && !this.app.client.isChannel(word);
    word += atStart ? ": " : " ";
    const head = input.value.slice(0, c.start) + word;
    input.value = head + c.after.replace(/^ /, "");
    input.setSelectionRange(head.length, head.length);
    return true;
  }

  changed() {
    this.completion = null; // typed (or pasted): a new word to complete
    this.resize();
    const buf = this.app.state.active;
    if (!buf) return;
    const text = this.input.value;
    const now = Date.now();
    if (!text || text.startsWith("/")) {
      this.typingDone(buf);
      return;
    }
    const t = this.typing;
    t.keyAt = now;
    if (t.buf !== buf || t.state !== "active" || now - t.sentAt >= ACTIVE_EVERY) {
      this.app.client?.sendTyping(buf, "active");
      this.typing = { buf, state: "active", sentAt: now, keyAt: now };
    }
  }

  typingDone(buf) {
    const t = this.typing;
    if (t.buf === buf && t.state !== "done") this.app.client?.sendTyping(buf, "done");
    this.typing = { buf: null, state: "done", sentAt: 0, keyAt: 0 };
  }

  tick() {
    const t = this.typing;
    if (t.buf && t.state === "active" && Date.now() - t.keyAt >= PAUSE_AFTER) {
      this.app.client?.sendTyping(t.buf, "paused");
      t.state = "paused";
    }
  }
}
