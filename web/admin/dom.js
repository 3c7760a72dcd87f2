// dom.js — small helpers every other script of the admin console uses:
// building elements (text always through textContent, never innerHTML),
// formatting times, durations and numbers, and the polite/assertive live
// regions screen readers hear. Exposed as window.Admin.dom.
'use strict';

window.Admin = window.Admin || {};

(function () {
  const S = window.AdminStrings;

  /**
   * Creates an element. `attrs`: `class`, `text` (textContent), `dataset`,
   * `on` ({event: handler}), booleans, and any other attribute. Children are
   * nodes or strings (strings become text nodes).
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    applyAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function applyAttrs(el, attrs) {
    if (!attrs) return;
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }

  function append(el, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
    }
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  /** Like h, for SVG elements. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'text') el.textContent = value;
        else if (key === 'class') el.setAttribute('class', value);
        else el.setAttribute(key, String(value));
      }
    }
    append(el, children);
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  const $ = (selector, root) => (root || document).querySelector(selector);

  // ---- Formatting -------------------------------------------------------

  const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const timeSeconds = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const dayMonth = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
  const dayMonthTime = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

  function toDate(value) {
    if (!value) return null;
    const d = value instanceof Date ? value : new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  /** "24 Nov 2026, 10:00", or "10:00" when it is today. */
  function when(value) {
    const d = toDate(value);
    if (!d) return S.sessions.none;
    const now = new Date();
    if (d.toDateString() === now.toDateString()) return timeOnly.format(d);
    return dateTime.format(d);
  }

  function fullWhen(value) {
    const d = toDate(value);
    return d ? dateTime.format(d) : S.sessions.none;
  }

  function clock(value) {
    const d = toDate(value);
    return d ? timeSeconds.format(d) : '';
  }

  /** A length of time in words: "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const t = S.time;
    if (s < 60) return S.format(t.seconds, { n: s });
    const m = Math.floor(s / 60);
    if (m < 60) return S.format(t.minutes, { n: m });
    const hours = Math.floor(m / 60);
    if (hours < 24) return m % 60 ? S.format(t.hoursMinutes, { h: hours, m: m % 60 }) : S.format(t.hours, { n: hours });
    const d = Math.floor(hours / 24);
    return hours % 24 ? S.format(t.daysHours, { d, h: hours % 24 }) : S.format(t.days, { n: d });
  }

  /** Time since `value`, in words ("3 min"). */
  function since(value) {
    const d = toDate(value);
    return d ? duration(Date.now() - d.getTime()) : S.sessions.none;
  }

  function ago(value) {
    const d = toDate(value);
    return d ? S.format(S.time.ago, { time: since(d) }) : S.sessions.none;
  }

  /** Milliseconds in words: "850 ms", "1.2 s". */
  function ms(value) {
    const n = Number(value) || 0;
    if (n < 1000) return S.format(S.time.ms, { n: Math.round(n) });
    return S.format(S.time.s, { n: (n / 1000).toLocaleString(undefined, { maximumFractionDigits: n < 10000 ? 1 : 0 }) });
  }

  function number(value, digits) {
    const n = Number(value) || 0;
    return n.toLocaleString(undefined, { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  /** A short number for axes: 1.2k, 3.4M. */
  function compact(value) {
    const n = Number(value) || 0;
    const abs = Math.abs(n);
    if (abs >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
    if (abs >= 1e4) return `${Math.round(n / 1e3)}k`;
    if (abs >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
    return `${+n.toFixed(n % 1 ? 1 : 0)}`;
  }

  /** An axis label for a time, fitted to the length of the period. */
  function axisTime(value, spanMs) {
    const d = toDate(value);
    if (!d) return '';
    if (spanMs <= 36 * 3600 * 1000) return timeOnly.format(d);
    if (spanMs <= 8 * 24 * 3600 * 1000) return dayMonthTime.format(d);
    return dayMonth.format(d);
  }

  /** A date-and-time field's text for a Date (local time, `YYYY-MM-DD HH:MM`). */
  function toLocalInput(d) {
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  /** RFC 3339 (UTC) from a date-and-time field (`YYYY-MM-DD`, with ` HH:MM` or not; local time), or '' when empty/invalid. */
  function fromLocalInput(value) {
    const m = /^\s*(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}:\d{2}))?\s*$/.exec(value || '');
    if (!m) return '';
    const d = new Date(`${m[1]}T${(m[2] || '00:00').padStart(5, '0')}`);
    return Number.isNaN(d.getTime()) ? '' : rfc3339(d);
  }

  /**
   * A date-and-time field: one text box (one Tab stop, where a
   * datetime-local box has a stop per part), its format in the placeholder
   * and in the hint read with its label.
   */
  function dateInput(id, attrs) {
    return h('input', { id, type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: S.dateFormat, title: S.dateFormatHint, pattern: '\\s*\\d{4}-\\d{2}-\\d{2}([ T]\\d{1,2}:\\d{2})?\\s*', ...attrs });
  }

  /** RFC 3339 without milliseconds, in UTC. */
  function rfc3339(d) {
    return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  // ---- Live regions -----------------------------------------------------

  let politeTimer = 0;
  /** Says `text` to screen readers (politely, or assertively). */
  function announce(text, assertive) {
    const region = document.getElementById(assertive ? 'live-assertive' : 'live-polite');
    if (!region) return;
    clearTimeout(politeTimer);
    region.textContent = '';
    // A new text node after a tick so the same words are spoken twice.
    politeTimer = setTimeout(() => {
      region.textContent = text;
    }, 50);
  }

  /** Plain words for an error body `{code, message}` from the server. */
  function errorText(error) {
    if (!error) return '';
    const template = S.errors[error.code];
    if (template) return S.format(template, { message: error.message || '' });
    return S.format(S.errors.generic, { message: error.message || error.code || '' });
  }

  window.Admin.dom = {
    h, svg, clear, $, when, fullWhen, clock, duration, since, ago, ms, number, compact, axisTime,
    toLocalInput, fromLocalInput, dateInput, rfc3339, toDate, announce, errorText,
  };
})();
