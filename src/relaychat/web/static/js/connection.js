// The WebSocket to /ws and its reconnect loop: exponential backoff with full jitter.
// It knows nothing of IRC beyond "one line per message" (IRCv3 websocket spec).

/** Delay before reconnect attempt n (1-based): uniform in [0, min(cap, base * 2^(n-1))]. */
export function backoffDelay(attempt, { base = 500, cap = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

export function defaultUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

/**
 * A connection that keeps itself open until stop() is called.
 * Callbacks: onOpen(), onLine(line), onClose({reason, willRetry, delay, attempt}), onWait(...).
 */
export class Connection {
  constructor(url, handlers) {
    this.url = url;
    this.h = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.state = "idle"; // idle | connecting | open | waiting | stopped
    this.retryAt = 0;
    this._onOnline = () => { if (this.state === "waiting") this.connectNow(); };
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this._onOnline);
    this._open();
  }

  /** Close for good (no reconnect). */
  stop(reason = "closed") {
    this.stopped = true;
    window.removeEventListener("online", this._onOnline);
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    this.state = "stopped";
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(1000, reason); } catch { /* already closed */ }
    }
  }

  /** Registration succeeded: the next failure starts the backoff from the beginning. */
  resetBackoff() {
    this.attempt = 0;
  }

  /** Skip the wait and try again now. */
  connectNow() {
    if (this.stopped || this.state === "open" || this.state === "connecting") return;
    clearTimeout(this.timer);
    this._open();
  }

  /** Drop the current socket and reconnect (e.g. the server stopped answering). */
  drop(reason) {
    if (this.ws) this._closed(reason);
  }

  send(line) {
    if (this.state !== "open" || !this.ws) return false;
    this.ws.send(line);
    return true;
  }

  get isOpen() {
    return this.state === "open";
  }

  _open() {
    this.state = "connecting";
    this.h.onConnecting?.(this.attempt);
    let ws;
    try {
      ws = new WebSocket(this.url, ["text.ircv3.net"]);
    } catch (err) {
      this._closed(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.state = "open";
      this.h.onOpen?.();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        for (const line of ev.data.split(/\r?\n/)) if (line) this.h.onLine(line);
      }
    };
    ws.onclose = (ev) => this._closed(ev.reason || (ev.code === 1006 ? "connection lost" : `closed (${ev.code})`));
    ws.onerror = () => { /* onclose follows with the details */ };
  }

  _closed(reason) {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try { ws.close(); } catch { /* ignore */ }
    }
    if (this.stopped) return;
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    this.state = "waiting";
    this.retryAt = Date.now() + delay;
    this.h.onClose?.({ reason, willRetry: true, delay, attempt: this.attempt });
    this.timer = setTimeout(() => this._open(), delay);
  }
}
