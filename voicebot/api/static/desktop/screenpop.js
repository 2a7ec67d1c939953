// The screen pop: what the bot learned before handing the caller (or chat customer) over.
// Used by the voice call panel (desktop.js, on the page's #pop-* elements) and by every chat
// pane (chat.js builds its own copy with create()). Rendering only: no state, no network.
//
// Every piece of packet data is caller-controlled text and goes in through textContent.
// Exposes window.voicebotScreenPop = { fill, create, fillTranscript, appendTranscriptLine,
// lineTime, ROLE_LABELS, CHANNEL_LABELS }.
"use strict";

(() => {
  const ANGRY = 0.6;
  const ROLE_LABELS = {
    caller: "Caller", bot: "Bot", keypad: "Keypad", event: "Event", agent: "Agent",
  };
  // Channel names of the packet (and of past contacts) in words.
  const CHANNEL_LABELS = {
    phone: "Phone", softphone: "Softphone", sip: "Phone", chat: "Web chat",
    messaging: "Messaging", text: "Text",
  };

  const {
    el, svg, parseTime, num, fmtDuration, fmtClock, humanize, display, percent,
  } = window.voicebotUI;

  const identity = (iso) => parseTime(iso);

  // refs: the pop's elements (see fromPage() in desktop.js and create() below); a is the
  // assignment ({entry_id, queue, priority, kind, packet, ...}); options.toLocal turns a
  // server timestamp into a local-clock ms (the desktop corrects for a skewed desk clock).
  function fill(refs, a, options = {}) {
    const toLocal = options.toLocal || identity;
    const p = a.packet && typeof a.packet === "object" ? a.packet : {};
    const caller = p.caller && typeof p.caller === "object" ? p.caller : {};
    const isCallback = a.kind === "callback";
    const isChat = a.media === "chat";

    refs.callerName.textContent = caller.name || (isChat ? "Chat customer" : "Unknown caller");
    refs.callerNumber.textContent = caller.number
      || (caller.name || isChat ? "" : "number withheld");
    refs.vip.hidden = !caller.vip;
    refs.root.classList.toggle("is-vip", !!caller.vip);
    refs.verified.textContent = p.verified ? "✓ Verified" : "Not verified";
    refs.verified.dataset.verified = p.verified ? "true" : "false";
    fillAttributes(refs.attributes, caller.attributes);

    const priority = String(a.priority || p.priority || "normal");
    refs.priority.textContent = `${humanize(priority)} priority`;
    refs.priority.dataset.priority = priority;
    refs.priority.title = num(a.priority_score) !== null ? `Priority score ${a.priority_score}` : "";
    refs.kind.textContent = isCallback ? "Callback" : (isChat ? "Chat" : "");
    refs.kind.dataset.media = isChat ? "chat" : "voice";

    const intent = p.intent && typeof p.intent === "object" ? p.intent : null;
    refs.intent.replaceChildren();
    if (intent && intent.name) {
      refs.intent.append(String(intent.name));
      const confidence = percent(intent.confidence);
      if (confidence) refs.intent.append(el("span", { cls: "confidence", text: confidence }));
    } else {
      refs.intent.textContent = "Unknown";
    }
    refs.queue.textContent = a.queue || p.queue || "—";
    refs.language.textContent = p.language || "—";
    refs.reason.textContent = p.reason || "—";
    if (refs.channel) {
      const channel = p.channel ? String(p.channel) : "";
      refs.channel.textContent = channel ? (CHANNEL_LABELS[channel] || humanize(channel)) : "—";
    }

    const callbackNumber = a.callback_number || (p.callback && p.callback.number) || null;
    refs.callbackRow.hidden = !(isCallback || callbackNumber);
    if (!refs.callbackRow.hidden) {
      const requested = p.callback ? toLocal(p.callback.requested_at) : NaN;
      refs.callback.textContent = (callbackNumber || "no number given")
        + (Number.isFinite(requested) ? ` (requested ${new Date(requested).toLocaleString()})` : "");
    }
    const flow = [p.flow, p.step].filter(Boolean).join(" › ");
    refs.flowRow.hidden = flow === "";
    refs.flow.textContent = flow;

    refs.summary.textContent = p.summary || "No summary.";
    fillSlots(refs.slots, p.slots);
    fillSentiment(refs.sentiment, p.sentiment);
    fillSources(refs.sources, p.sources);
    fillHistory(refs.history, p.history, toLocal);
    if (refs.transcript) fillTranscript(refs.transcript, p.transcript, options);
  }

  function fillAttributes(box, attributes) {
    box.replaceChildren();
    const entries = attributes && typeof attributes === "object" ? Object.entries(attributes) : [];
    for (const [key, value] of entries) {
      box.appendChild(el("div", {}, [
        el("dt", { text: humanize(key) }),
        el("dd", { text: display(value) }),
      ]));
    }
    box.hidden = entries.length === 0;
  }

  function fillSlots(box, slots) {
    const entries = slots && typeof slots === "object" ? Object.entries(slots) : [];
    if (entries.length === 0) {
      box.replaceChildren(el("p", { cls: "empty", text: "No details collected." }));
      return;
    }
    const body = el("tbody");
    for (const [name, value] of entries) {
      body.appendChild(el("tr", {}, [
        el("th", { text: humanize(name), attrs: { scope: "row", title: name } }),
        el("td", { text: display(value) }),
      ]));
    }
    box.replaceChildren(el("table", { cls: "kv" }, [
      el("caption", { cls: "visually-hidden", text: "Details the bot collected" }),
      body,
    ]));
  }

  function fillSentiment(box, sentiment) {
    box.replaceChildren();
    box.classList.remove("angry");
    if (!sentiment || typeof sentiment !== "object") {
      box.appendChild(el("p", { cls: "empty", text: "No sentiment data." }));
      return;
    }
    const anger = num(sentiment.anger);
    const score = num(sentiment.score);
    const trend = Array.isArray(sentiment.trend) ? sentiment.trend.filter((v) => num(v) !== null) : [];
    const angry = anger !== null && anger > ANGRY;
    box.classList.toggle("angry", angry);

    if (trend.length > 0) box.appendChild(sparkline(trend));
    else box.appendChild(el("p", { cls: "empty", text: "No trend yet." }));

    const figures = el("div", { cls: "sentiment-figures" });
    if (anger !== null) {
      figures.appendChild(el("span", {}, [
        document.createTextNode("Anger "),
        el("span", { cls: "anger-value", text: `${anger.toFixed(2)}${angry ? " (high)" : ""}` }),
      ]));
    }
    if (score !== null) {
      figures.appendChild(el("span", { text: `Score ${score > 0 ? "+" : ""}${score.toFixed(2)}` }));
    }
    box.appendChild(figures);
  }

  // A small line of the trend. Values in [0, 1] or [-1, 1] keep that scale, so a flat line
  // means the same thing on every call; anything else is fitted to its own range.
  function sparkline(values) {
    const width = 140;
    const height = 40;
    const padY = 4;
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (lo >= -1 && hi <= 1) {
      lo = lo < 0 ? -1 : 0;
      hi = 1;
    } else if (hi === lo) {
      lo -= 1;
      hi += 1;
    }
    const x = (i) => (values.length === 1 ? width / 2 : 3 + (i * (width - 6)) / (values.length - 1));
    const y = (v) => padY + (1 - (v - lo) / (hi - lo)) * (height - 2 * padY);
    const first = values[0];
    const last = values[values.length - 1];
    const label = values.length === 1
      ? `Sentiment: ${last.toFixed(2)}`
      : `Sentiment trend over ${values.length} points, from ${first.toFixed(2)} to ${last.toFixed(2)}`;
    const graphic = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": label });
    const title = svg("title");
    title.textContent = label;
    graphic.appendChild(title);
    if (lo < 0 && hi > 0) {
      graphic.appendChild(svg("line", { class: "baseline", x1: 0, x2: width, y1: y(0), y2: y(0) }));
    }
    if (values.length > 1) {
      const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      graphic.appendChild(svg("polyline", { class: "spark", points }));
    }
    graphic.appendChild(svg("circle", { class: "spark-dot", cx: x(values.length - 1), cy: y(last), r: 3 }));
    return graphic;
  }

  function fillSources(list, sources) {
    const items = Array.isArray(sources) ? sources.filter((s) => s && typeof s === "object") : [];
    if (items.length === 0) {
      list.replaceChildren(el("li", { cls: "empty", text: "None: the bot did not use the knowledge base." }));
      return;
    }
    list.replaceChildren(...items.map((source) => {
      const item = el("li");
      item.appendChild(el("span", { cls: "source-title", text: source.title || source.file || source.id || "Untitled" }));
      if (source.heading) item.appendChild(el("span", { cls: "source-heading", text: ` › ${source.heading}` }));
      const score = percent(source.score);
      const file = [source.file, score ? `match ${score}` : ""].filter(Boolean).join(" · ");
      if (file) item.appendChild(el("span", { cls: "source-file", text: file }));
      return item;
    }));
  }

  // The customer's last contacts on any channel (packet.history, newest first): when, how,
  // what about, how it ended and the summary, so the agent need not ask again.
  function fillHistory(list, history, toLocal) {
    if (!list) return;
    const items = Array.isArray(history) ? history.filter((h) => h && typeof h === "object") : [];
    if (items.length === 0) {
      list.replaceChildren(el("li", { cls: "empty", text: "No earlier contacts." }));
      return;
    }
    list.replaceChildren(...items.map((contact) => {
      const item = el("li", { cls: "contact", attrs: { "data-call-id": String(contact.call_id || "") } });
      const at = toLocal(contact.at);
      const channel = contact.channel ? String(contact.channel) : "";
      const head = el("span", { cls: "contact-head" }, [
        el("span", { cls: "contact-date", text: Number.isFinite(at) ? new Date(at).toLocaleString() : "—" }),
        el("span", { cls: "contact-channel", text: channel ? (CHANNEL_LABELS[channel] || humanize(channel)) : "—" }),
        el("span", { cls: "contact-intent", text: contact.intent ? String(contact.intent) : "no intent" }),
        el("span", { cls: "contact-outcome", text: contact.outcome ? humanize(String(contact.outcome)) : "no outcome" }),
      ]);
      item.appendChild(head);
      if (contact.summary) item.appendChild(el("p", { cls: "contact-summary", text: String(contact.summary) }));
      return item;
    }));
  }

  function transcriptItem(line, options = {}) {
    const role = Object.hasOwn(ROLE_LABELS, line.role) ? line.role : "event";
    const item = el("li", { cls: role });
    const meta = el("span", { cls: "line-meta" });
    meta.append(role === "agent" && line.agent_name ? String(line.agent_name) : ROLE_LABELS[role]);
    const at = lineTime(line.at, options.toLocal || identity);
    if (at) meta.append(` · ${at}`);
    if (line.intent) meta.appendChild(el("span", { cls: "line-intent", text: String(line.intent) }));
    item.append(meta, String(line.text ?? ""));
    return item;
  }

  function fillTranscript(list, lines, options = {}) {
    const items = Array.isArray(lines) ? lines.filter((l) => l && typeof l === "object") : [];
    if (items.length === 0) {
      list.replaceChildren(el("li", { cls: "event empty-transcript", text: "No transcript." }));
      return;
    }
    list.replaceChildren(...items.map((line) => transcriptItem(line, options)));
  }

  // One more line at the bottom (a chat message after the handoff); the list follows the
  // newest line unless the agent has scrolled up to read.
  function appendTranscriptLine(list, line, options = {}) {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    const placeholder = list.querySelector(".empty-transcript");
    if (placeholder) placeholder.remove();
    const item = transcriptItem(line, options);
    list.appendChild(item);
    if (atBottom) list.scrollTop = list.scrollHeight;
    return item;
  }

  function lineTime(at, toLocal = identity) {
    if (typeof at === "number" && Number.isFinite(at)) return `+${fmtDuration(at * 1000)}`;
    const local = toLocal(at);
    return Number.isFinite(local) ? fmtClock(local) : "";
  }

  // A pop of its own for a chat pane: the same parts as the call panel's, without the call
  // controls or the transcript (the pane shows the conversation itself).
  function create() {
    const refs = {};
    const part = (name, tag, cls, attrs) => {
      refs[name] = el(tag, { cls, attrs: attrs || {} });
      return refs[name];
    };
    const fact = (label, name, wide) => el("div", { cls: wide ? "wide" : "" }, [
      el("dt", { text: label }), part(name, "dd", ""),
    ]);
    const section = (title, body) => el("section", { cls: "pop-section" }, [el("h4", { text: title }), body]);
    refs.callbackRow = el("div", { cls: "wide" }, [el("dt", { text: "Call back on" }), part("callback", "dd", "")]);
    refs.flowRow = el("div", { cls: "wide" }, [el("dt", { text: "Flow" }), part("flow", "dd", "")]);
    const root = el("div", { cls: "pop chat-pop" }, [
      el("div", { cls: "pop-heading-row" }, [
        part("priority", "span", "badge priority"),
        part("kind", "span", "badge kind"),
      ]),
      el("div", { cls: "caller-row" }, [
        el("h3", { cls: "pop-caller" }, [
          part("callerName", "span", "caller-name"), part("callerNumber", "span", "caller-number"),
        ]),
        part("vip", "span", "badge vip"),
        part("verified", "span", "badge verified"),
      ]),
      part("attributes", "dl", "attributes"),
      el("dl", { cls: "facts" }, [
        fact("Intent", "intent"), fact("Queue", "queue"), fact("Channel", "channel"),
        fact("Language", "language"), fact("Reason for transfer", "reason", true),
        refs.callbackRow, refs.flowRow,
      ]),
      section("Summary", part("summary", "p", "summary")),
      section("Last contacts", part("history", "ol", "history")),
      el("div", { cls: "pop-columns" }, [
        section("Details collected", part("slots", "div", "")),
        section("Sentiment", part("sentiment", "div", "sentiment")),
      ]),
      section("Knowledge used by the bot", part("sources", "ul", "sources")),
    ]);
    refs.vip.textContent = "★ VIP";
    refs.root = root;
    return refs;
  }

  window.voicebotScreenPop = {
    fill, create, fillTranscript, appendTranscriptLine, lineTime, ROLE_LABELS, CHANNEL_LABELS,
  };
})();
