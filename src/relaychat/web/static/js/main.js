// The web client's glue: sign-in form, settings in localStorage, the session and the UI,
// keyboard shortcuts (Alt+1..9, Alt+Up/Down, Ctrl+K), read tracking, typing notifications,
// desktop notifications. Protocol work is in client.js/handlers.js/history.js.

import { Client } from "./client.js";
import { runInput } from "./commands.js";
import { build, formatTime, stripFormatting } from "./irc.js";
import { State, nextId } from "./state.js";
import { UI } from "./ui.js";
import { Finder, ChannelList } from "./dialogs.js";
import { Composer } from "./composer.js";
import { Uploader } from "./upload.js";

const $ = (id) => document.getElementById(id);
const SETTINGS = "relaychat.settings";
const OPEN = "relaychat.buffers";
const MARKERS = "relaychat.markers";
const OUTBOX = "relaychat.outbox";

function load(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch { /* private mode or full: not remembered */ }
}

class App {
  constructor() {
    this.state = new State();
    this.client = null;
    this.ui = new UI(this);
    this.finder = new Finder(this);
    this.channels = new ChannelList(this);
    this.composer = new Composer(this);
    this.uploader = new Uploader(this);
    this.markers = load(MARKERS, {});
    this.state.onChange((what, buf, detail) => this.changed(what, buf, detail));
    setInterval(() => this.tick(), 1000);
    document.addEventListener("visibilitychange", () => this.markRead());
    // Leaving the page: say so (others see "quit: Leaving", not a dropped connection).
    window.addEventListener("pagehide", () => {
      if (this.client?.conn.isOpen) this.client.send("QUIT :Leaving");
    });
    window.addEventListener("focus", () => this.markRead());
  }

  // --- sign in --------------------------------------------------------------------------------

  boot() {
    const s = load(SETTINGS, null);
    this.wireUi();
    if (s && s.nick && s.autoconnect) this.connect(s);
    else this.showLogin(s);
  }

  showLogin(s, error = "") {
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-nick").value = s?.nick || "";
    $("login-password").value = s?.password || "";
    $("login-channels").value = (s?.channels || ["#lobby"]).join(" ");
    $("login-register").checked = false;
    $("login-error").textContent = error;
    $("login-nick").focus();
  }

  submitLogin(ev) {
    ev.preventDefault();
    const nick = $("login-nick").value.trim();
    const password = $("login-password").value;
    const register = $("login-register").checked;
    if (!/^[^\s#&:,*?!@.][^\s,*?!@]*$/.test(nick)) {
      $("login-error").textContent = "A nick has no spaces and does not start with #, & or :";
      return;
    }
    if (register && password.length < 8) {
      $("login-error").textContent = "To create an account, choose a password of at least 8 characters";
      return;
    }
    const channels = $("login-channels").value.split(/[\s,]+/).filter(Boolean)
      .map((c) => (/^[#&]/.test(c) ? c : `#${c}`));
    const remember = $("login-remember").checked;
    const settings = { nick, password, register, channels, autoconnect: true, rememberPassword: remember };
    // "Remember me" off: only the nick and channels are kept (for the form), no password, and
    // the next visit starts at this form.
    save(SETTINGS, { ...settings, register: false, password: remember ? password : "", autoconnect: remember });
    // the channels asked for now join what was open before (unless this device forgets)
    const before = remember ? load(OPEN, []) : [];
    const known = new Set(before.map((b) => b.name.toLowerCase()));
    save(OPEN, [...before, ...channels.filter((c) => !known.has(c.toLowerCase()))
      .map((name) => ({ name, kind: "channel" }))]);
    this.connect(settings);
  }

  connect(settings) {
    $("login").hidden = true;
    $("app").hidden = false;
    if (this.client) this.client.conn.stop();
    this.settings = settings;
    const open = load(OPEN, []);
    for (const b of open) {
      if (b.kind === "channel" || b.kind === "query") {
        const buf = this.state.add(b.name, b.kind);
        buf.readMarker = Math.max(buf.readMarker, this.markers[b.name.toLowerCase()] || 0);
      }
    }
    // The sign-in form's channels, the first time; afterwards what was open (a closed channel
    // stays closed).
    if (!open.length) for (const c of settings.channels || []) this.state.add(c, "channel");
    this.client = new Client(this.state, settings, {
      status: (st) => this.ui.renderStatus(st),
      loginFailed: (text) => this.loginFailed(text),
      list: (channels) => this.channels.show(channels),
      joined: (buf) => this.joined(buf),
      nickChanged: (nick) => this.nickChanged(nick),
      metadata: (target, key, value) => this.metadata(target, key, value),
      storedMarker: (buf) => this.markers[buf.name.toLowerCase()] || 0,
    });
    this.restoreOutbox(settings);
    const first = [...this.state.buffers.values()].find((b) => b.kind === "channel") || this.state.server;
    this.select(open.length ? this.state.get(load("relaychat.active", "")) || first : first);
    this.client.start();
  }

  /** Lines typed while offline survive a reload: shown as waiting, sent once connected. */
  restoreOutbox(settings) {
    const client = this.client;
    for (const o of load(OUTBOX, [])) {
      if (!o || typeof o.text !== "string" || !o.name) continue;
      const buf = this.state.add(o.name, o.kind === "channel" ? "channel" : "query");
      const entry = { id: nextId(), time: Number(o.time) || Date.now(), kind: o.entryKind || "message",
        text: o.text, nick: settings.nick, self: true, local: true,
        status: o.idem ? "unconfirmed" : "queued", idem: o.idem || undefined };
      buf.insert(entry);
      client.outbox.push({ buffer: buf, entry });
    }
    client.onOutboxChange = () => save(OUTBOX, client.outbox.map((i) => ({ name: i.buffer.name,
      kind: i.buffer.kind, entryKind: i.entry.kind, text: i.entry.text, time: i.entry.time,
      idem: i.entry.idem })));
  }

  loginFailed(text) {
    const s = load(SETTINGS, {});
    save(SETTINGS, { ...s, autoconnect: false });
    this.showLogin({ ...s, nick: this.settings.nick, password: this.settings.password }, text);
  }

  signOut() {
    if (this.client) this.client.quit("Signed out");
    save(SETTINGS, { ...load(SETTINGS, {}), autoconnect: false, password: "" });
    save(OPEN, []);
    save(OUTBOX, []);
    localStorage.removeItem("relaychat.seen");
    setTimeout(() => window.location.reload(), 300);
  }

  // --- buffers ----------------------------------------------------------------------------------

  saveOpen() {
    save(OPEN, [...this.state.buffers.values()].filter((b) => b.kind !== "server" && !(b.kind === "channel" && b.parted))
      .map((b) => ({ name: b.name, kind: b.kind })));
    if (this.state.active) save("relaychat.active", this.state.active.name);
  }

  select(buf, { closeDrawer = false, keepFocus = false } = {}) {
    if (!buf) return;
    const prev = this.state.active;
    if (prev && prev !== buf) {
      prev.draft = $("input").value;
      this.composer.typingDone(prev);
    }
    buf.dividerAt = buf.unread ? buf.readMarker : 0;
    this.state.setActive(buf);
    $("input").value = buf.draft || "";
    this.composer.resize();
    this.ui.renderHeader(buf);
    this.ui.renderLog(buf, { stick: true });
    this.ui.renderMembers(buf);
    this.ui.renderTyping(buf);
    if (closeDrawer) this.drawer(false);
    this.markRead();
    this.ui.renderBuffers();
    this.saveOpen();
    if (!buf.history.loaded && buf.kind === "query" && this.client?.connected) this.client.history.opened(buf);
    if (!keepFocus && (window.matchMedia("(min-width: 721px)").matches || closeDrawer)) {
      $("input").focus({ preventScroll: true });
    }
  }

  /** A buffer for a nick or channel (made if missing); select it when `focus`. */
  openBuffer(name, focus) {
    const isChan = this.client.isChannel(name);
    let buf = this.state.get(name);
    if (!buf) {
      buf = this.state.add(name, isChan ? "channel" : "query");
      if (isChan) this.client.send(build("JOIN", [name]));
      else {
        this.client.monitorAdd([name]);
        if (this.client.connected) this.client.history.opened(buf);
      }
      this.saveOpen();
    }
    if (focus) this.select(buf, { closeDrawer: true });
    return buf;
  }

  closeBuffer(buf) {
    if (!buf || buf.kind === "server") return;
    if (buf.kind === "channel" && buf.joined) this.client.send(build("PART", [buf.name]));
    if (buf.kind === "query" && this.client.monitor) this.client.send(build("MONITOR", ["-", buf.name]));
    this.client.outbox = this.client.outbox.filter((i) => i.buffer !== buf);
    const list = this.state.ordered();
    const i = list.indexOf(buf);
    this.state.remove(buf);
    const next = this.state.ordered()[Math.max(0, i - 1)];
    this.select(next);
    this.saveOpen();
  }

  joined(buf) {
    this.saveOpen();
    if (this.pendingSelect && this.client.casefold(this.pendingSelect) === buf.key) {
      this.pendingSelect = null;
      this.select(buf);
    }
    if (this.state.active === buf) this.ui.renderHeader(buf);
  }

  nickChanged(nick) {
    const s = load(SETTINGS, {});
    if (s.nick) save(SETTINGS, { ...s, nick });
    this.ui.renderStatus(this.client.status);
  }

  metadata(target, key, value) {
    if (key !== "display-name") return;
    const k = this.client.casefold(target);
    if (value) this.ui.displayNames.set(k, value);
    else this.ui.displayNames.delete(k);
    const buf = this.state.active;
    if (buf) this.ui.renderMembers(buf);
  }

  retry(entry) {
    const buf = this.state.active;
    if (buf) this.client.retry(buf, entry);
  }

  redact(entry) {
    const buf = this.state.active;
    if (!buf || !entry.msgid) return;
    this.client.send(build("REDACT", [buf.name, entry.msgid]));
  }

  insertNick(nick) {
    const input = $("input");
    input.value = input.value ? `${input.value.replace(/\s*$/, " ")}${nick} ` : `${nick}: `;
    input.focus();
  }

  // --- reading ------------------------------------------------------------------------------

  /** The active buffer is read when it is shown and scrolled to the end. */
  markRead() {
    const buf = this.state.active;
    if (!buf || document.hidden || !this.ui.atBottom()) return;
    const latest = buf.latestTalkTime();
    if (latest > buf.readMarker) buf.readMarker = latest;
    if (buf.unread || buf.mentions) {
      buf.unread = 0;
      buf.mentions = 0;
      this.ui.renderBuffers();
    }
    this.markers[buf.name.toLowerCase()] = buf.readMarker;
    clearTimeout(this.markerTimer);
    this.markerTimer = setTimeout(() => {
      save(MARKERS, this.markers);
      const c = this.client;
      if (c?.connected && c.has("draft/read-marker") && buf.kind !== "server" && buf.readMarker > buf.markerSent
          && (buf.kind !== "channel" || buf.joined)) {
        buf.markerSent = buf.readMarker;
        c.send(build("MARKREAD", [buf.name, `timestamp=${formatTime(buf.readMarker)}`]));
      }
    }, 500);
  }

  // --- model changes --------------------------------------------------------------------------

  changed(what, buf, detail) {
    const active = this.state.active;
    switch (what) {
      case "buffers":
        this.saveOpen();
        this.ui.renderBuffers();
        if (active) this.ui.renderHeader(active);
        break;
      case "message": {
        const { entry, where, live } = detail;
        if (live && entry.time) this.client.history.seen(entry.time);
        if (buf === active) {
          if (where === "append") this.ui.append(buf, entry);
          else this.ui.renderLog(buf);
        }
        if (live && !entry.self && ["message", "action", "notice"].includes(entry.kind)) {
          const visible = buf === active && !document.hidden && this.ui.atBottom();
          if (!visible && entry.time > buf.readMarker) {
            buf.unread += 1;
            if (entry.highlight || buf.kind === "query") buf.mentions += 1;
            this.ui.renderBuffers();
          } else {
            this.markRead();
          }
          if ((entry.highlight || buf.kind === "query") && (document.hidden || buf !== active)) this.notify(buf, entry);
        }
        break;
      }
      case "message-changed":
        if (buf === active) {
          if (detail.moved) this.ui.renderLog(buf);
          else this.ui.update(buf, detail.entry);
        }
        break;
      case "messages-all":
      case "history":
      case "history-state":
        if (!buf || buf === active) this.ui.renderLog(active, { keepFromBottom: detail?.mode === "before" });
        if (what === "history") {
          this.ui.renderBuffers();
          if (buf === active) this.markRead();
        }
        break;
      case "members":
        if (buf === active) this.ui.renderMembers(buf);
        break;
      case "topic":
        if (buf === active) this.ui.renderHeader(buf);
        break;
      case "typing":
        this.ui.renderTyping(buf);
        break;
      case "unread":
        this.ui.renderBuffers();
        break;
      case "caps":
        if (active) this.ui.renderLog(active);
        break;
      case "active":
        break;
      default:
    }
  }

  tick() {
    const buf = this.state.active;
    if (buf && buf.typing.size) this.ui.renderTyping(buf);
    this.composer.tick();
  }

  // --- notifications (asked for on a click only) ------------------------------------------------

  notify(buf, entry) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const title = buf.kind === "query" ? entry.nick : `${entry.nick} in ${buf.name}`;
    const n = new Notification(title, { body: stripFormatting(entry.text).slice(0, 200), tag: buf.key });
    n.onclick = () => {
      window.focus();
      this.select(buf);
      n.close();
    };
  }

  async askNotifications() {
    if (!("Notification" in window)) {
      this.client.info(this.state.active || this.state.server, "This browser has no desktop notifications", "error");
      return;
    }
    const answer = await Notification.requestPermission();
    this.updateNotifyButton();
    this.client.info(this.state.active || this.state.server,
      answer === "granted" ? "Desktop notifications are on for mentions and private messages" : "Desktop notifications are off");
  }

  updateNotifyButton() {
    const on = "Notification" in window && Notification.permission === "granted";
    $("btn-notify").setAttribute("aria-pressed", on ? "true" : "false");
    $("btn-notify").title = on ? "Desktop notifications are on" : "Turn on desktop notifications";
  }

  // --- the page -------------------------------------------------------------------------------

  drawer(open) {
    document.body.classList.toggle("drawer-open", open);
    $("scrim").hidden = !open && !document.body.classList.contains("members-open");
    $("btn-menu").setAttribute("aria-expanded", open ? "true" : "false");
  }

  membersPanel(open) {
    document.body.classList.toggle("members-open", open);
    $("scrim").hidden = !open && !document.body.classList.contains("drawer-open");
    $("btn-members").setAttribute("aria-expanded", open ? "true" : "false");
  }

  cycle(delta) {
    const list = this.state.ordered();
    const i = list.indexOf(this.state.active);
    this.select(list[(i + delta + list.length) % list.length]);
  }

  wireUi() {
    $("login-form").addEventListener("submit", (ev) => this.submitLogin(ev));
    $("btn-menu").addEventListener("click", () => this.drawer(!document.body.classList.contains("drawer-open")));
    $("btn-members").addEventListener("click", () => {
      if (window.matchMedia("(max-width: 1000px)").matches) this.membersPanel(!document.body.classList.contains("members-open"));
      else document.body.classList.toggle("members-hidden");
    });
    $("scrim").addEventListener("click", () => {
      this.drawer(false);
      this.membersPanel(false);
    });
    $("btn-join").addEventListener("click", () => this.finder.open("#"));
    $("btn-list").addEventListener("click", () => this.openChannelList(""));
    $("btn-notify").addEventListener("click", () => this.askNotifications());
    $("btn-logout").addEventListener("click", () => this.signOut());
    $("btn-retry").addEventListener("click", () => this.client?.conn.connectNow());
    $("btn-latest").addEventListener("click", () => {
      this.ui.scrollToBottom();
      this.markRead();
    });
    // the buffer list is a listbox: arrows move, Home/End jump
    $("buffers").addEventListener("keydown", (ev) => {
      const list = this.state.ordered();
      const i = list.indexOf(this.state.active);
      const to = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: list.length - 1 }[ev.key];
      if (to === undefined || !list[to]) return;
      ev.preventDefault();
      this.select(list[to], { keepFocus: true });
    });
    $("log").addEventListener("scroll", () => {
      const buf = this.state.active;
      if (!buf) return;
      if (this.ui.atBottom()) $("btn-latest").hidden = true;
      if ($("log").scrollTop < 80 && this.client?.history.loadEarlier(buf)) this.ui.renderLog(buf, { keepFromBottom: true });
      if (this.ui.atBottom()) this.markRead();
    });
    document.addEventListener("keydown", (ev) => this.globalKey(ev));
    this.updateNotifyButton();
  }

  globalKey(ev) {
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey && /^Digit[1-9]$/.test(ev.code)) {
      const buf = this.state.ordered()[Number(ev.code.slice(5)) - 1];
      if (buf) this.select(buf);
      ev.preventDefault();
    } else if (ev.altKey && (ev.key === "ArrowUp" || ev.key === "ArrowDown")) {
      this.cycle(ev.key === "ArrowUp" ? -1 : 1);
      ev.preventDefault();
    } else if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "k") {
      this.finder.open("");
      ev.preventDefault();
    } else if (ev.key === "Escape") {
      this.drawer(false);
      this.membersPanel(false);
    }
  }

  openChannelList(filter) {
    this.channels.open(filter);
    if (this.client?.connected) this.client.send("LIST");
  }

  send(line) {
    const buf = this.state.active || this.state.server;
    runInput(this, buf, line);
  }
}

const app = new App();
window.relaychatApp = app; // for the browser tests and the console
app.boot();
