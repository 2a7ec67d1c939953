// Agent assist on the desktop: the caller's live transcript, and for each customer line the
// knowledge passages and suggested replies the server sends (`transcript` and `assist`
// messages, docs/desktop.md "Agent assist"). "Insert" puts a reply in a chat's input box
// (chat.js's window.voicebotDesktopChat.insertIntoChat); it never sends it.
//
// When a suggestion is first drawn, the page reports it (POST /api/assist/rendered) so that the
// time from the customer's words to the suggestion on screen can be measured.
//
// Everything shown is caller- or document-controlled text and goes in through textContent.
// `window.desktopAssist` mirrors the state for tests.
"use strict";

(() => {
  const desktop = window.voicebotDesktop;
  if (!desktop) return;
  const { el, fmtClock } = window.voicebotUI;

  const KEEP_LINES = 50; // transcript lines kept per contact
  const KEEP_SUGGESTIONS = 3; // suggestions shown per contact, newest first
  const KEEP_CONTACTS = 5;

  const state = {
    contacts: {}, // entry id -> { media, transcript: [{text, at}], suggestions: [message] }
    rendered: [], // {line_id, entry_id, said_at, rendered_at, latency_ms}
    inserted: [], // {entry_id, text}
    reportErrors: 0,
  };
  window.desktopAssist = state;

  const panel = el("section", { cls: "card assist", attrs: { id: "assist", "aria-labelledby": "assist-title" } }, [
    el("h2", { text: "Assist", attrs: { id: "assist-title" } }),
    el("p", { cls: "hint", text: "What the knowledge base says about the customer's last words." }),
  ]);
  const list = el("div", { cls: "assist-contacts", attrs: { "aria-live": "polite" } });
  panel.append(list);
  panel.hidden = true;
  (document.getElementById("work") || document.body).append(panel);

  const blocks = new Map(); // entry id -> {root, transcript, suggestions}

  function contact(entryId, media) {
    let data = state.contacts[entryId];
    if (!data) {
      data = state.contacts[entryId] = { media: media || "voice", transcript: [], suggestions: [] };
      const ids = Object.keys(state.contacts);
      if (ids.length > KEEP_CONTACTS) forget(ids[0]);
    }
    if (media) data.media = media;
    let block = blocks.get(entryId);
    if (!block) {
      const transcript = el("ol", { cls: "assist-transcript", attrs: { "aria-label": "Live transcript" } });
      const suggestions = el("div", { cls: "assist-suggestions" });
      const root = el("article", { cls: "assist-contact", attrs: { "data-entry": entryId } }, [
        el("h3", { cls: "assist-label", text: label(entryId, data.media) }),
        transcript,
        suggestions,
      ]);
      block = { root, transcript, suggestions };
      blocks.set(entryId, block);
      list.prepend(root);
    }
    panel.hidden = false;
    return { data, block };
  }

  function label(entryId, media) {
    const current = desktop.current && desktop.current();
    const packet = current && current.entry_id === entryId ? current.packet || {} : {};
    const who = (packet.caller && packet.caller.name) || (media === "chat" ? "Chat" : "Call");
    return media === "chat" ? `${who} (chat)` : `${who} (call)`;
  }

  function forget(entryId) {
    delete state.contacts[entryId];
    const block = blocks.get(entryId);
    if (block) block.root.remove();
    blocks.delete(entryId);
    panel.hidden = blocks.size === 0;
  }

  function onTranscript(message) {
    if (!message.entry_id || typeof message.text !== "string") return;
    const { data, block } = contact(message.entry_id, "voice");
    const at = typeof message.at === "number" ? message.at * 1000 : Date.now();
    data.transcript.push({ text: message.text, at });
    if (data.transcript.length > KEEP_LINES) data.transcript.shift();
    block.transcript.append(el("li", {}, [
      el("span", { cls: "assist-time", text: fmtClock(at) }),
      el("span", { cls: "assist-role", text: "Caller" }),
      el("span", { cls: "assist-text", text: message.text }),
    ]));
    while (block.transcript.children.length > KEEP_LINES) block.transcript.firstChild.remove();
    block.transcript.scrollTop = block.transcript.scrollHeight;
  }

  function insertFunction() {
    const chat = window.voicebotDesktopChat;
    if (chat && typeof chat.insertIntoChat === "function") return chat.insertIntoChat;
    if (typeof desktop.insertIntoChat === "function") return desktop.insertIntoChat;
    if (typeof window.insertIntoChat === "function") return window.insertIntoChat;
    return null;
  }

  function suggestionView(message, media) {
    const passages = Array.isArray(message.passages) ? message.passages : [];
    const replies = Array.isArray(message.replies) ? message.replies : [];
    const insert = media === "chat" ? insertFunction() : null;
    const root = el("section", { cls: "assist-suggestion", attrs: { "data-line": String(message.line_id || "") } }, [
      el("p", { cls: "assist-for", text: `“${message.for_text || ""}”` }),
    ]);
    const replyList = el("ul", { cls: "assist-replies", attrs: { "aria-label": "Suggested replies" } });
    for (const reply of replies) {
      if (!reply || typeof reply.text !== "string") continue;
      const item = el("li", { cls: `assist-reply ${reply.kind === "written" ? "written" : "extractive"}` }, [
        el("span", { cls: "assist-kind", text: reply.kind === "written" ? "Written" : "From the documents" }),
        el("span", { cls: "assist-text", text: reply.text }),
      ]);
      if (insert) {
        const button = el("button", { cls: "btn btn-small btn-secondary", text: "Insert", attrs: { type: "button" } });
        button.addEventListener("click", () => {
          // false: the chat has ended (or its pane is gone); nothing to put the text in
          if (insert(message.entry_id, reply.text) !== false) {
            state.inserted.push({ entry_id: message.entry_id, text: reply.text });
          }
        });
        item.append(button);
      }
      replyList.append(item);
    }
    root.append(replyList);
    const sources = el("ul", { cls: "assist-passages", attrs: { "aria-label": "Knowledge passages" } });
    for (const passage of passages) {
      if (!passage) continue;
      const where = passage.heading ? `${passage.title} — ${passage.heading}` : passage.title;
      sources.append(el("li", {}, [
        el("span", { cls: "assist-title", text: where || passage.file || "" }),
        el("span", { cls: "assist-score", text: typeof passage.score === "number" ? passage.score.toFixed(2) : "" }),
        el("p", { cls: "assist-snippet", text: passage.snippet || "" }),
      ]));
    }
    root.append(sources);
    return root;
  }

  function onAssist(message) {
    if (!message.entry_id || !message.line_id) return;
    const { data, block } = contact(message.entry_id, message.media);
    const previous = data.suggestions.findIndex((s) => s.line_id === message.line_id);
    const view = suggestionView(message, data.media);
    if (previous >= 0) {
      // the written reply for a line already shown: it replaces that suggestion in place
      data.suggestions[previous] = message;
      const old = block.suggestions.querySelector(`[data-line="${CSS.escape(message.line_id)}"]`);
      if (old) old.replaceWith(view); else block.suggestions.prepend(view);
    } else {
      data.suggestions.unshift(message);
      block.suggestions.prepend(view);
      if (data.suggestions.length > KEEP_SUGGESTIONS) data.suggestions.pop();
      while (block.suggestions.children.length > KEEP_SUGGESTIONS) block.suggestions.lastChild.remove();
      // after the frame that shows it: that is when the agent can read it
      requestAnimationFrame(() => setTimeout(() => report(message), 0));
    }
  }

  async function report(message) {
    const renderedAt = performance.timeOrigin + performance.now();
    const saidAt = typeof message.said_at === "number" ? message.said_at * 1000 : null;
    state.rendered.push({
      line_id: message.line_id,
      entry_id: message.entry_id,
      said_at: saidAt,
      rendered_at: renderedAt,
      latency_ms: saidAt === null ? null : renderedAt - saidAt,
    });
    if (state.rendered.length > 1000) state.rendered.shift();
    try {
      await fetch("/api/assist/rendered", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ line_id: message.line_id, rendered_at: renderedAt }),
      });
    } catch (error) {
      state.reportErrors += 1; // a measurement lost is not worth troubling the agent with
    }
  }

  desktop.on("transcript", onTranscript);
  desktop.on("assist", onAssist);
  desktop.on("wrap_up", (message) => { if (message && message.entry_id) forget(message.entry_id); });
  desktop.on("chat_done", (message) => { if (message && message.entry_id) forget(message.entry_id); });
  desktop.on("reset", () => { for (const id of [...blocks.keys()]) forget(id); });
})();
