// What the voicebot pages share (the agent desktop, the supervisor page): small DOM and
// formatting helpers, and the page banner. Plain script, no build step: it defines the one
// global `window.voicebotUI`, which common/session.js adds to and the pages read from; load it
// before them.
//
// Every piece of data goes into the page as text (el's `text`, textContent), never as markup:
// caller names, transcripts and queue names are caller- or admin-controlled.
"use strict";

(() => {
  const ns = (window.voicebotUI = window.voicebotUI || {});

  // An element with a class, text, attributes and children; null children are skipped.
  function el(tag, { cls = null, text = null, attrs = null } = {}, children = []) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== null && text !== undefined) node.textContent = String(text);
    if (attrs) for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    for (const child of children) if (child) node.appendChild(child);
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  // An ISO timestamp in ms since the epoch, NaN when it is not one.
  function parseTime(value) {
    if (typeof value !== "string" || value === "") return NaN;
    return Date.parse(value);
  }

  function num(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // 65000 -> "1:05", 3725000 -> "1:02:05".
  function fmtDuration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }

  // A local-clock time of day, "14:03:09".
  function fmtClock(ms) {
    if (!Number.isFinite(ms)) return "";
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // "wrap_up" -> "Wrap up".
  function humanize(text) {
    const s = String(text || "").replace(/[_-]+/g, " ").trim();
    return s === "" ? "" : s[0].toUpperCase() + s.slice(1);
  }

  function display(value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  // A share as a whole percentage: 0.5 and 50 are both "50%" (values up to 1 are fractions).
  function percent(value) {
    const n = num(value);
    if (n === null) return "";
    return `${Math.round((n <= 1 ? n * 100 : n))}%`;
  }

  // The page's banner: a persistent message (the connection is down, with an action such as
  // "Retry now") and a transient one on top (an error that clears itself after `transientMs`,
  // or when dismissed). Elements: box, text, action (a button), close (a button).
  function banner(elements, { transientMs = 8000 } = {}) {
    let persistent = null; // {text, kind, action: {label, run}}
    let transient = null;
    let timer = null;
    let action = null;

    function render() {
      const shown = transient || persistent;
      if (!shown) {
        elements.box.hidden = true;
        elements.text.textContent = "";
        action = null;
        return;
      }
      elements.box.hidden = false;
      elements.box.dataset.kind = shown.kind || "warn";
      elements.text.textContent = shown.text;
      action = shown.action;
      elements.action.hidden = !shown.action;
      elements.action.textContent = shown.action ? shown.action.label : "";
      elements.close.hidden = shown !== transient;
    }

    function clearTransient() {
      clearTimeout(timer);
      transient = null;
      render();
    }

    elements.action.addEventListener("click", () => { if (action) action.run(); });
    elements.close.addEventListener("click", clearTransient);

    return {
      setPersistent(text, kind, withAction = null) {
        persistent = text ? { text, kind, action: withAction } : null;
        render();
      },
      clearPersistent() {
        persistent = null;
        render();
      },
      showTransient(text, kind = "error") {
        transient = { text, kind, action: null };
        clearTimeout(timer);
        timer = setTimeout(clearTransient, transientMs);
        render();
      },
      clearTransient,
    };
  }

  Object.assign(ns, {
    el, svg, parseTime, num, pad, fmtDuration, fmtClock, humanize, display, percent, banner,
  });
})();
