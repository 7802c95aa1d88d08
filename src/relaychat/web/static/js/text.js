// Message text -> DOM nodes. Only text nodes and elements made here: a user's text is never
// parsed as HTML. IRC formatting becomes classes; http(s) URLs become links (nothing else:
// javascript:, data: and the rest stay text).

import { formatSpans } from "./irc.js";

const URL_RX = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** A URL's href when it is http or https, else null. */
export function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function appendLinked(parent, text) {
  let last = 0;
  for (const m of text.matchAll(URL_RX)) {
    let raw = m[0];
    // Leave closing punctuation outside the link, but keep balanced parentheses.
    const trail = TRAILING.exec(raw);
    if (trail) {
      let cut = trail[0];
      if (cut.startsWith(")") && raw.includes("(")) cut = cut.slice(1);
      raw = raw.slice(0, raw.length - cut.length);
    }
    const href = safeHref(raw);
    if (!href) continue;
    if (m.index > last) parent.append(text.slice(last, m.index));
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    a.textContent = raw;
    parent.append(a);
    last = m.index + raw.length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

/** Fill `parent` with `text`, IRC formatting as classes, links clickable. */
export function renderText(parent, text) {
  for (const span of formatSpans(text)) {
    const plain = !span.bold && !span.italic && !span.underline && !span.strike && !span.mono
      && span.fg < 0 && span.bg < 0;
    if (plain) {
      appendLinked(parent, span.text);
      continue;
    }
    const el = document.createElement("span");
    if (span.bold) el.classList.add("f-b");
    if (span.italic) el.classList.add("f-i");
    if (span.underline) el.classList.add("f-u");
    if (span.strike) el.classList.add("f-s");
    if (span.mono) el.classList.add("f-m");
    if (span.fg >= 0 && span.fg < 16) el.classList.add(`fg${span.fg}`);
    if (span.bg >= 0 && span.bg < 16) el.classList.add(`bg${span.bg}`);
    appendLinked(el, span.text);
    parent.append(el);
  }
}

/** A stable colour class for a nick. */
export function nickClass(nick) {
  let h = 0;
  for (const c of nick.toLowerCase()) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return `nc${h % 12}`;
}

/** el("div", {class: "x", text: "y"}, ...children): a small DOM builder (no innerHTML). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}
