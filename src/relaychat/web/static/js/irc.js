// IRC lines: parse, serialise, tags, casemapping, formatting codes. Pure: no DOM, no sockets.
// Message format: https://modern.ircdocs.horse/#messages ; tags: https://ircv3.net/specs/extensions/message-tags

const TAG_UNESCAPE = { ":": ";", s: " ", r: "\r", n: "\n", "\\": "\\" };

/** Tag value escaping (message-tags §Escaping values). */
export function escapeTag(value) {
  return String(value).replace(/[\\; \r\n]/g, (c) =>
    c === "\\" ? "\\\\" : c === ";" ? "\\:" : c === " " ? "\\s" : c === "\r" ? "\\r" : "\\n");
}

export function unescapeTag(value) {
  return value.replace(/\\(.?)/g, (_, c) => (c in TAG_UNESCAPE ? TAG_UNESCAPE[c] : c));
}

/**
 * Parse one IRC line (no CR-LF) into {tags, source, nick, user, host, command, params}.
 * Returns null for an empty or malformed line.
 */
export function parse(line) {
  let rest = line.replace(/[\r\n]+$/, "");
  const msg = { tags: {}, source: "", nick: "", user: "", host: "", command: "", params: [] };
  if (rest.startsWith("@")) {
    const sp = rest.indexOf(" ");
    if (sp < 0) return null;
    for (const part of rest.slice(1, sp).split(";")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      if (eq < 0) msg.tags[part] = "";
      else msg.tags[part.slice(0, eq)] = unescapeTag(part.slice(eq + 1));
    }
    rest = rest.slice(sp + 1).replace(/^ +/, "");
  }
  if (rest.startsWith(":")) {
    const sp = rest.indexOf(" ");
    if (sp < 0) return null;
    msg.source = rest.slice(1, sp);
    rest = rest.slice(sp + 1).replace(/^ +/, "");
    const pfx = parsePrefix(msg.source);
    msg.nick = pfx.nick;
    msg.user = pfx.user;
    msg.host = pfx.host;
  }
  while (rest.length) {
    if (rest.startsWith(":")) {
      msg.params.push(rest.slice(1));
      break;
    }
    const sp = rest.indexOf(" ");
    if (sp < 0) {
      msg.params.push(rest);
      break;
    }
    msg.params.push(rest.slice(0, sp));
    rest = rest.slice(sp + 1).replace(/^ +/, "");
  }
  if (!msg.params.length) return null;
  msg.command = msg.params.shift().toUpperCase();
  return msg;
}

/** nick!user@host -> parts (a server name has no "!"/"@"). */
export function parsePrefix(source) {
  const bang = source.indexOf("!");
  const at = source.indexOf("@", bang < 0 ? 0 : bang);
  if (bang < 0 && at < 0) return { nick: source, user: "", host: "" };
  const nickEnd = bang >= 0 ? bang : at;
  return {
    nick: source.slice(0, nickEnd),
    user: bang >= 0 ? source.slice(bang + 1, at < 0 ? undefined : at) : "",
    host: at >= 0 ? source.slice(at + 1) : "",
  };
}

const BAD_PARAM = /[\r\n\0]/g;

/**
 * Serialise a command: build("PRIVMSG", ["#a", "hi there"], {label: "x"}).
 * The last parameter gets a ":" when it needs one; CR, LF and NUL are removed from every
 * parameter so one call can never make two lines.
 */
export function build(command, params = [], tags = null) {
  let out = "";
  if (tags) {
    const parts = [];
    for (const [k, v] of Object.entries(tags)) {
      if (v === undefined || v === null) continue;
      parts.push(v === "" || v === true ? k : `${k}=${escapeTag(v)}`);
    }
    if (parts.length) out += `@${parts.join(";")} `;
  }
  out += command;
  params.forEach((p, i) => {
    let s = String(p).replace(BAD_PARAM, "");
    const last = i === params.length - 1;
    if (last && (s === "" || s.includes(" ") || s.startsWith(":"))) s = `:${s}`;
    else if (!last) s = s.replace(/ /g, "") || "*";
    out += ` ${s}`;
  });
  return out;
}

/** Casemapping (ISUPPORT CASEMAPPING): rfc1459 by default, or ascii. */
export function makeCasefold(mapping = "rfc1459") {
  if (mapping === "ascii") return (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const strict = mapping === "strict-rfc1459";
  return (s) =>
    s.replace(/[A-Z[\]\\^~]/g, (c) => {
      if (c >= "A" && c <= "Z") return c.toLowerCase();
      if (c === "[") return "{";
      if (c === "]") return "}";
      if (c === "\\") return "|";
      if (c === "^") return strict ? c : "~";
      return c;
    });
}

/** Parse ISUPPORT PREFIX "(ov)@+" -> {modes: "ov", symbols: "@+"}. */
export function parsePrefixToken(value) {
  const m = /^\(([^)]*)\)(.*)$/.exec(value || "");
  if (!m || m[1].length !== m[2].length) return { modes: "ov", symbols: "@+" };
  return { modes: m[1], symbols: m[2] };
}

/** UTF-8 length of a string. */
export function byteLength(s) {
  return new TextEncoder().encode(s).length;
}

/**
 * Split text into pieces of at most maxBytes UTF-8 bytes, preferring to break at spaces;
 * never splits a character (or a surrogate pair).
 */
export function splitBytes(text, maxBytes) {
  const out = [];
  let rest = text;
  while (byteLength(rest) > maxBytes) {
    let cut = 0;
    let bytes = 0;
    for (const ch of rest) {
      const b = byteLength(ch);
      if (bytes + b > maxBytes) break;
      bytes += b;
      cut += ch.length;
    }
    const space = rest.lastIndexOf(" ", cut);
    if (space > cut / 2) cut = space + 1;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  out.push(rest);
  return out;
}

/** An IRC server-time value -> milliseconds since the epoch (NaN when unreadable). */
export function parseTime(value) {
  return value ? Date.parse(value) : NaN;
}

/** Milliseconds -> "YYYY-MM-DDThh:mm:ss.sssZ" (server-time format). */
export function formatTime(ms) {
  return new Date(ms).toISOString();
}

/**
 * IRC formatting codes -> spans: [{text, bold, italic, underline, strike, mono, fg, bg}].
 * https://modern.ircdocs.horse/formatting.html ; reverse swaps fg/bg, hex colours are dropped.
 */
export function formatSpans(text) {
  const spans = [];
  let st = { bold: false, italic: false, underline: false, strike: false, mono: false, fg: -1, bg: -1, reverse: false };
  let buf = "";
  const flush = () => {
    if (!buf) return;
    const fg = st.reverse ? st.bg : st.fg;
    const bg = st.reverse ? (st.fg < 0 ? 1 : st.fg) : st.bg;
    spans.push({ text: buf, bold: st.bold, italic: st.italic, underline: st.underline,
      strike: st.strike, mono: st.mono, fg, bg });
    buf = "";
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const code = c.charCodeAt(0);
    if (code >= 0x20 || c === "\n" || c === "\t") {
      buf += c;
      continue;
    }
    flush();
    if (c === "\x02") st = { ...st, bold: !st.bold };
    else if (c === "\x1d") st = { ...st, italic: !st.italic };
    else if (c === "\x1f") st = { ...st, underline: !st.underline };
    else if (c === "\x1e") st = { ...st, strike: !st.strike };
    else if (c === "\x11") st = { ...st, mono: !st.mono };
    else if (c === "\x16") st = { ...st, reverse: !st.reverse };
    else if (c === "\x0f") st = { bold: false, italic: false, underline: false, strike: false, mono: false, fg: -1, bg: -1, reverse: false };
    else if (c === "\x03") {
      const m = /^(\d{1,2})(?:,(\d{1,2}))?/.exec(text.slice(i + 1));
      if (!m) st = { ...st, fg: -1, bg: -1 };
      else {
        st = { ...st, fg: Number(m[1]) % 100, bg: m[2] !== undefined ? Number(m[2]) % 100 : st.bg };
        i += m[0].length;
      }
    } else if (c === "\x04") {
      const m = /^([0-9a-fA-F]{6})(?:,([0-9a-fA-F]{6}))?/.exec(text.slice(i + 1));
      if (m) i += m[0].length;
    }
    // other control characters are dropped
  }
  flush();
  return spans;
}

/** Text without formatting codes. */
export function stripFormatting(text) {
  return formatSpans(text).map((s) => s.text).join("");
}

/** CTCP ACTION (/me): "\x01ACTION waves\x01" -> "waves", anything else -> null. */
export function actionText(text) {
  if (!text.startsWith("\x01ACTION")) return null;
  let body = text.slice(7);
  if (body.endsWith("\x01")) body = body.slice(0, -1);
  return body.startsWith(" ") ? body.slice(1) : body;
}

/** Other CTCP requests ("\x01VERSION\x01") -> the verb, else null. */
export function ctcpVerb(text) {
  if (!text.startsWith("\x01")) return null;
  const body = text.slice(1).replace(/\x01$/, "");
  return body.split(" ")[0].toUpperCase();
}

/** Parse "key=value,flag" cap values (e.g. draft/multiline's) into an object. */
export function parseCapValue(value) {
  const out = {};
  for (const part of (value || "").split(",")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq < 0) out[part] = "";
    else out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** base64 of a UTF-8 string (SASL PLAIN). */
export function base64Utf8(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
