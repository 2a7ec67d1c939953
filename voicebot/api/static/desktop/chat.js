// Chats on the agent desktop: offers marked as chats, one pane per chat (a tab each), several
// at once beside the voice call, which desktop.js keeps handling on its own.
//
// Server messages (over the desktop's control socket, see desktop.js): hello (its chats and
// max_chats), chat_offer, chat_withdrawn, chat_connected (the assignment with the lines so
// far), chat_message, chat_typing, chat_closed, chat_wrap_up, chat_done. Up: accept, decline,
// end and wrap_up with the chat's entry_id (the same messages as a call's), chat_typing.
// The agent's lines go by REST: POST /api/desktop/chats/{entry_id}/messages {"text"}; each
// comes back as a chat_message like the customer's, so the pane shows what was stored.
//
// For the agent assist (assist.js): window.voicebotDesktopChat.insertIntoChat(entryId, text) (also
// window.insertIntoChat) puts text in that chat's input box without sending it; on(type, fn)
// hears "line" (a line added to a pane: {entryId, role, text}) and "active" (the pane shown).
// Test hook: window.desktop.chats (entry id -> {status, lines, typing, input, error, ...}),
// window.desktop.chatOrder (the tabs' order) and window.desktop.activeChat.
"use strict";

(() => {
  const core = window.voicebotDesktop;
  const pop = window.voicebotScreenPop;
  const { el, humanize, fmtDuration, errorDetail } = window.voicebotUI;
  const MAX_CHARS = 2000;
  const TYPING_SEND_MS = 2500; // at most one "agent typing" per this
  const TYPING_SHOW_MS = 4000; // the customer's typing indicator lasts this long
  const SENDER_ROLES = { customer: "caller", agent: "agent", system: "event" };

  const $ = (id) => document.getElementById(id);
  const ui = {
    section: $("chats"),
    title: $("chats-title"),
    count: $("chats-count"),
    tabs: $("chat-tabs"),
    panes: $("chat-panes"),
  };

  const desktop = core.state;
  desktop.chats = {};
  desktop.chatOrder = [];
  desktop.activeChat = null;
  desktop.maxChats = null;

  const chats = new Map(); // entry id -> chat
  let active = null;
  let wrapUpCodes = [];
  const listeners = new Map();

  function emit(type, detail) {
    for (const handler of listeners.get(type) || []) {
      try {
        handler(detail);
      } catch (error) {
        core.noteError(`A chat listener failed: ${error && error.message ? error.message : error}`);
      }
    }
  }

  // ======================================================================================
  // server messages
  // ======================================================================================

  core.on("hello", (message) => {
    wrapUpCodes = Array.isArray(message.wrap_up_codes) ? message.wrap_up_codes.map(String) : [];
    desktop.maxChats = typeof message.max_chats === "number" ? message.max_chats : null;
    const held = Array.isArray(message.chats) ? message.chats.filter((c) => c && c.entry_id) : [];
    const ids = new Set(held.map((c) => c.entry_id));
    for (const id of [...chats.keys()]) if (!ids.has(id)) removeChat(id);
    for (const assignment of held) {
      const status = assignment.status === "offered" ? "offered" : assignment.status;
      const chat = upsert(assignment, status);
      if (Array.isArray(assignment.lines)) setLines(chat, assignment.lines);
      if (status === "offered") chat.expiresAt = core.toLocal(assignment.expires_at);
      if (status === "wrap_up") chat.wrapUpUntil = core.toLocal(assignment.wrap_up_until);
      renderChat(chat);
    }
    render();
  });

  core.on("chat_offer", (message) => {
    const assignment = message.assignment;
    if (!assignment || !assignment.entry_id) return;
    const chat = upsert(assignment, "offered");
    chat.expiresAt = core.toLocal(message.expires_at);
    chat.offeredAt = Date.now();
    chat.acting = false;
    renderChat(chat);
    if (!active || !chats.has(active)) select(chat.entryId);
    const caller = (assignment.packet && assignment.packet.caller) || {};
    core.announce(`Incoming chat: ${caller.name || "a customer"}, ${assignment.queue || "no queue"} queue.`);
    core.chime();
    render();
  });

  core.on("chat_withdrawn", (message) => {
    const chat = chats.get(message.entry_id);
    if (!chat || chat.status !== "offered") return;
    removeChat(chat.entryId);
    const reason = message.reason ? `: ${message.reason}` : "";
    core.showNotice(`Chat offer withdrawn${reason}`, "warn");
    core.announce(`Chat offer withdrawn${reason}`);
    render();
  });

  core.on("chat_connected", (message) => {
    const assignment = message.assignment;
    if (!assignment || !assignment.entry_id) return;
    const chat = upsert(assignment, "connected");
    chat.acting = false;
    if (Array.isArray(assignment.lines)) setLines(chat, assignment.lines);
    renderChat(chat);
    select(chat.entryId);
    chat.parts.input.focus();
    render();
  });

  core.on("chat_message", (message) => {
    const chat = chats.get(message.entry_id);
    if (!chat) return;
    const role = SENDER_ROLES[message.sender] || "event";
    const added = addLine(chat, {
      role, text: String(message.text ?? ""), at: message.at, agent_name: message.agent_name,
    });
    if (added && role === "caller") {
      chat.typing = false;
      if (active !== chat.entryId) chat.unread += 1;
    }
    renderChat(chat);
    render();
  });

  core.on("chat_typing", (message) => {
    const chat = chats.get(message.entry_id);
    if (!chat || message.sender === "agent") return;
    chat.typing = true;
    chat.typingUntil = Date.now() + TYPING_SHOW_MS;
    renderChat(chat);
  });

  core.on("chat_closed", (message) => {
    const chat = chats.get(message.entry_id);
    if (!chat) return;
    chat.endedBy = message.by === "agent" ? "agent" : "customer";
    if (chat.endedBy === "customer") core.announce("The chat customer left.");
    renderChat(chat);
  });

  core.on("chat_wrap_up", (message) => {
    const chat = chats.get(message.entry_id);
    if (!chat) return;
    chat.status = "wrap_up";
    chat.acting = false;
    chat.endedBy = chat.endedBy || message.ended_by || null;
    chat.wrapUpUntil = core.toLocal(message.wrap_up_until);
    renderChat(chat);
    render();
  });

  core.on("chat_done", (message) => {
    const chat = chats.get(message.entry_id);
    if (!chat) return;
    const who = chat.label;
    removeChat(chat.entryId);
    core.showNotice(message.reason ? `Chat with ${who} closed: ${message.reason}` : `Chat with ${who} wrapped up.`);
    render();
  });

  core.on("error", () => {
    // Whatever was waiting for the server's answer can be tried again.
    for (const chat of chats.values()) {
      if (chat.acting) {
        chat.acting = false;
        renderChat(chat);
      }
    }
  });

  core.on("reset", () => {
    for (const id of [...chats.keys()]) removeChat(id);
    render();
  });

  // ======================================================================================
  // the chats
  // ======================================================================================

  function upsert(assignment, status) {
    let chat = chats.get(assignment.entry_id);
    if (!chat) {
      chat = {
        entryId: assignment.entry_id,
        callId: assignment.call_id,
        status,
        assignment,
        lines: [],
        keys: new Set(),
        unread: 0,
        typing: false,
        typingUntil: 0,
        lastTypingSent: 0,
        acting: false,
        sending: false,
        error: "",
        endedBy: null,
        expiresAt: NaN,
        offeredAt: Date.now(),
        wrapUpUntil: NaN,
        label: "",
        parts: null,
      };
      chat.parts = buildPane(chat);
      chats.set(chat.entryId, chat);
    }
    chat.assignment = assignment;
    chat.callId = assignment.call_id || chat.callId;
    chat.status = status;
    const caller = (assignment.packet && assignment.packet.caller) || {};
    chat.label = caller.name || caller.number || "Chat customer";
    pop.fill(chat.parts.pop, assignment, { toLocal: core.toLocal });
    return chat;
  }

  function lineKey(line) {
    return `${line.role}|${line.at}|${line.text}`;
  }

  function setLines(chat, lines) {
    chat.lines = [];
    chat.keys = new Set();
    chat.parts.log.replaceChildren();
    for (const line of lines) {
      if (line && typeof line === "object") addLine(chat, line, { quiet: true });
    }
    if (chat.lines.length === 0) pop.fillTranscript(chat.parts.log, []);
    chat.parts.log.scrollTop = chat.parts.log.scrollHeight;
  }

  // A line once: the assignment read from the database and the bus may both bring it.
  function addLine(chat, line, { quiet = false } = {}) {
    const entry = {
      role: line.role, text: String(line.text ?? ""), at: line.at, agent_name: line.agent_name || null,
    };
    const key = lineKey(entry);
    if (chat.keys.has(key)) return false;
    chat.keys.add(key);
    chat.lines.push(entry);
    pop.appendTranscriptLine(chat.parts.log, entry, { toLocal: core.toLocal });
    if (!quiet) emit("line", { entryId: chat.entryId, role: entry.role, text: entry.text });
    return true;
  }

  function removeChat(entryId) {
    const chat = chats.get(entryId);
    if (!chat) return;
    chats.delete(entryId);
    chat.parts.tab.remove();
    chat.parts.pane.remove();
    delete desktop.chats[entryId];
    if (active === entryId) {
      active = null;
      const next = chats.keys().next();
      if (!next.done) select(next.value);
    }
  }

  function select(entryId) {
    if (!chats.has(entryId)) return;
    active = entryId;
    const chat = chats.get(entryId);
    chat.unread = 0;
    for (const other of chats.values()) {
      const shown = other.entryId === entryId;
      other.parts.pane.hidden = !shown;
      other.parts.tab.setAttribute("aria-selected", String(shown));
      other.parts.tab.tabIndex = shown ? 0 : -1;
      renderTab(other);
    }
    emit("active", { entryId });
    render();
  }

  // ======================================================================================
  // actions
  // ======================================================================================

  function accept(chat) {
    if (chat.status !== "offered" || chat.acting) return;
    core.unlockAudio();
    if (core.send({ type: "accept", entry_id: chat.entryId })) {
      chat.acting = true;
      renderChat(chat);
    }
  }

  function decline(chat) {
    if (chat.status !== "offered") return;
    if (core.send({ type: "decline", entry_id: chat.entryId })) {
      removeChat(chat.entryId);
      core.showNotice("Chat offer declined.", "info");
      render();
    }
  }

  function endChat(chat) {
    if (chat.status !== "connected" || chat.acting) return;
    if (core.send({ type: "end", entry_id: chat.entryId })) {
      chat.acting = true;
      chat.endedBy = chat.endedBy || "agent";
      renderChat(chat);
    }
  }

  async function sendLine(chat) {
    const input = chat.parts.input;
    const text = input.value.trim();
    if (chat.status !== "connected" || chat.sending) return;
    if (!text) {
      chat.error = "Write a message first.";
      renderChat(chat);
      return;
    }
    if (text.length > MAX_CHARS) {
      chat.error = `Messages are at most ${MAX_CHARS} characters; this one has ${text.length}.`;
      renderChat(chat);
      return;
    }
    chat.sending = true;
    chat.error = "";
    renderChat(chat);
    try {
      const response = await fetch(`/api/desktop/chats/${encodeURIComponent(chat.entryId)}/messages`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ text }),
      });
      if (response.status === 401) {
        core.sessionExpired();
        return;
      }
      if (!response.ok) throw new Error(await errorDetail(response));
      // Sent: the line itself arrives as a chat_message. Only what was sent is cleared, so
      // words typed meanwhile stay.
      if (input.value.trim() === text) input.value = "";
    } catch (error) {
      chat.error = `Not sent: ${error && error.message ? error.message : error}`;
      core.noteError(chat.error);
    } finally {
      chat.sending = false;
      renderChat(chat);
    }
  }

  function typed(chat) {
    if (chat.error && chat.parts.input.value.length <= MAX_CHARS) chat.error = "";
    renderChat(chat);
    const now = Date.now();
    if (chat.status !== "connected" || now - chat.lastTypingSent < TYPING_SEND_MS) return;
    if (!chat.parts.input.value.trim()) return;
    chat.lastTypingSent = now;
    core.send({ type: "chat_typing", entry_id: chat.entryId });
  }

  function submitWrapUp(chat, event) {
    event.preventDefault();
    if (chat.status !== "wrap_up" || chat.acting) return;
    const code = wrapUpCodes.length > 0 ? chat.parts.wrapCode.value : null;
    if (wrapUpCodes.length > 0 && !code) {
      chat.error = "Choose an outcome.";
      renderChat(chat);
      chat.parts.wrapCode.focus();
      return;
    }
    chat.error = "";
    if (core.send({ type: "wrap_up", entry_id: chat.entryId, code, notes: chat.parts.wrapNotes.value.trim() })) {
      chat.acting = true;
      renderChat(chat);
    }
  }

  // For the agent assist: a suggested reply into the box, for the agent to edit and send.
  function insertIntoChat(entryId, text) {
    const chat = chats.get(entryId);
    if (!chat || chat.status !== "connected") return false;
    chat.parts.input.value = String(text ?? "").slice(0, MAX_CHARS);
    if (active !== entryId) select(entryId);
    chat.parts.input.focus();
    typed(chat);
    return true;
  }

  // ======================================================================================
  // the panes
  // ======================================================================================

  function buildPane(chat) {
    const id = chat.entryId;
    const tab = el("button", {
      cls: "chat-tab",
      attrs: { type: "button", role: "tab", id: `chat-tab-${id}`, "aria-controls": `chat-pane-${id}`, "data-entry-id": id },
    }, [el("span", { cls: "chat-tab-name" }), el("span", { cls: "chat-tab-state" }), el("span", { cls: "chat-unread", attrs: { hidden: "" } })]);
    tab.addEventListener("click", () => select(id));
    const heading = el("h3", { cls: "chat-phase" });
    const countdown = el("span", { cls: "chat-countdown", attrs: { role: "timer", "aria-live": "off" } });
    const btnAccept = el("button", { cls: "btn btn-primary", text: "Accept chat", attrs: { type: "button", "data-action": "accept" } });
    const btnDecline = el("button", { cls: "btn btn-secondary", text: "Decline", attrs: { type: "button", "data-action": "decline" } });
    const btnEnd = el("button", { cls: "btn btn-danger btn-small", text: "End chat", attrs: { type: "button", "data-action": "end" } });
    btnAccept.addEventListener("click", () => accept(chat));
    btnDecline.addEventListener("click", () => decline(chat));
    btnEnd.addEventListener("click", () => endChat(chat));

    const screenPop = pop.create();
    const popBox = el("details", { cls: "chat-pop-box" }, [el("summary", { text: "Screen pop" }), screenPop.root]);
    popBox.open = true;
    const log = el("ol", { cls: "transcript chat-log", attrs: { tabindex: "0", "aria-label": "Conversation", "aria-live": "polite" } });
    const typing = el("p", { cls: "chat-typing", text: "The customer is typing…", attrs: { hidden: "" } });
    const closed = el("p", { cls: "chat-closed", attrs: { hidden: "" } });
    const input = el("textarea", {
      cls: "chat-input",
      attrs: { rows: "3", maxlength: String(MAX_CHARS), "aria-label": "Your message", placeholder: "Write to the customer… (Enter sends, Shift+Enter: new line)" },
    });
    const counter = el("span", { cls: "chat-counter", attrs: { "aria-live": "off" } });
    const btnSend = el("button", { cls: "btn btn-primary btn-small", text: "Send", attrs: { type: "submit", "data-action": "send" } });
    const error = el("p", { cls: "form-error chat-error", attrs: { role: "alert" } });
    const composer = el("form", { cls: "chat-composer", attrs: { novalidate: "" } }, [
      input, el("div", { cls: "chat-composer-row" }, [counter, btnEnd, btnSend]),
    ]);
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendLine(chat);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendLine(chat);
      }
    });
    input.addEventListener("input", () => typed(chat));

    const wrapCode = el("select", { attrs: { "aria-label": "Outcome" } });
    const wrapNotes = el("textarea", { attrs: { rows: "3", maxlength: "4000", "aria-label": "Notes (optional)" } });
    const wrapCountdown = el("span", { cls: "chat-countdown", attrs: { role: "timer", "aria-live": "off" } });
    const btnWrap = el("button", { cls: "btn btn-primary btn-small", text: "Submit wrap-up", attrs: { type: "submit", "data-action": "wrap-up" } });
    const wrapForm = el("form", { cls: "chat-wrapup", attrs: { novalidate: "", hidden: "" } }, [
      el("div", { cls: "wrapup-head" }, [el("h4", { text: "Wrap-up" }), wrapCountdown]),
      wrapCode, wrapNotes, btnWrap,
    ]);
    wrapForm.addEventListener("submit", (event) => submitWrapUp(chat, event));
    wrapCode.addEventListener("change", () => { chat.error = ""; renderChat(chat); });

    const offerActions = el("div", { cls: "actions", attrs: { role: "group", "aria-label": "Chat offer" } }, [btnAccept, btnDecline]);
    const pane = el("article", {
      cls: "card chat-pane",
      attrs: { role: "tabpanel", id: `chat-pane-${id}`, "aria-labelledby": `chat-tab-${id}`, "data-entry-id": id, hidden: "" },
    }, [
      el("div", { cls: "chat-head" }, [heading, countdown]),
      offerActions,
      popBox,
      log, typing, closed,
      composer, error,
      wrapForm,
    ]);
    ui.tabs.appendChild(tab);
    ui.panes.appendChild(pane);
    return {
      tab, pane, heading, countdown, offerActions, btnAccept, btnDecline, btnEnd, pop: screenPop, popBox,
      log, typing, closed, composer, input, counter, btnSend, error, wrapForm, wrapCode, wrapNotes,
      wrapCountdown, btnWrap,
    };
  }

  function fillWrapCodes(chat) {
    const box = chat.parts.wrapCode;
    if (box.options.length === wrapUpCodes.length + 1) return;
    box.replaceChildren(
      el("option", { text: "Choose an outcome…", attrs: { value: "" } }),
      ...wrapUpCodes.map((code) => el("option", { text: humanize(code), attrs: { value: code } })),
    );
    box.hidden = wrapUpCodes.length === 0;
  }

  function renderTab(chat) {
    const [name, state, unread] = chat.parts.tab.children;
    name.textContent = chat.label;
    state.textContent = { offered: "offer", connected: "", wrap_up: "wrap-up" }[chat.status] || "";
    unread.textContent = String(chat.unread);
    unread.hidden = chat.unread === 0;
    chat.parts.tab.dataset.status = chat.status;
  }

  function renderChat(chat) {
    const p = chat.parts;
    const connected = desktop.connected;
    const offered = chat.status === "offered";
    const talking = chat.status === "connected";
    const wrapping = chat.status === "wrap_up";
    p.pane.dataset.status = chat.status;
    p.heading.textContent = offered ? "Incoming chat" : talking ? `Chat with ${chat.label}` : `Wrap-up: chat with ${chat.label}`;
    p.offerActions.hidden = !offered;
    p.btnAccept.disabled = chat.acting || !connected;
    p.btnDecline.disabled = chat.acting || !connected;
    p.btnAccept.textContent = chat.acting && offered ? "Accepting…" : "Accept chat";
    p.popBox.open = offered ? true : p.popBox.open;
    p.log.hidden = offered;
    p.composer.hidden = !talking;
    p.input.disabled = !talking;
    p.btnSend.disabled = !talking || chat.sending || !connected;
    p.btnSend.textContent = chat.sending ? "Sending…" : "Send";
    p.btnEnd.disabled = !talking || chat.acting || !connected;
    const length = p.input.value.length;
    p.counter.textContent = length > MAX_CHARS - 200 ? `${length} / ${MAX_CHARS}` : "";
    p.typing.hidden = !(talking && chat.typing && Date.now() < chat.typingUntil);
    p.closed.hidden = !chat.endedBy || offered;
    p.closed.textContent = chat.endedBy === "customer" ? "The customer left the chat." : "You ended the chat.";
    p.error.textContent = chat.error;
    p.wrapForm.hidden = !wrapping;
    if (wrapping) {
      fillWrapCodes(chat);
      p.btnWrap.disabled = chat.acting || !connected;
      p.btnWrap.textContent = chat.acting ? "Submitting…" : "Submit wrap-up";
    }
    renderTab(chat);
    tickChat(chat, Date.now());
    desktop.chats[chat.entryId] = {
      entryId: chat.entryId,
      callId: chat.callId,
      status: chat.status,
      label: chat.label,
      lines: chat.lines.map((line) => ({ role: line.role, text: line.text })),
      typing: !p.typing.hidden,
      input: p.input.value,
      error: chat.error,
      endedBy: chat.endedBy,
      unread: chat.unread,
      acting: chat.acting,
    };
  }

  function tickChat(chat, now) {
    const p = chat.parts;
    if (chat.status === "offered" && Number.isFinite(chat.expiresAt)) {
      const left = chat.expiresAt - now;
      p.countdown.textContent = left > 0 ? `Answer within ${Math.ceil(left / 1000)} s` : "Expiring…";
      p.countdown.classList.toggle("urgent", left <= 5000);
    } else {
      p.countdown.textContent = "";
    }
    if (chat.status === "wrap_up" && Number.isFinite(chat.wrapUpUntil)) {
      const left = chat.wrapUpUntil - now;
      p.wrapCountdown.textContent = left > 0 ? `Time left ${fmtDuration(left + 999)}` : "Time is up";
    } else {
      p.wrapCountdown.textContent = "";
    }
    if (chat.typing && now >= chat.typingUntil && !p.typing.hidden) {
      chat.typing = false;
      p.typing.hidden = true;
      if (desktop.chats[chat.entryId]) desktop.chats[chat.entryId].typing = false;
    }
  }

  function render() {
    const count = [...chats.values()].filter((c) => c.status !== "offered").length;
    ui.section.hidden = chats.size === 0;
    const limit = desktop.maxChats;
    ui.count.textContent = limit === null ? String(count) : `${count} / ${limit}`;
    desktop.chatOrder = [...chats.keys()];
    desktop.activeChat = active;
    for (const id of Object.keys(desktop.chats)) if (!chats.has(id)) delete desktop.chats[id];
  }

  // The tab strip: arrow keys move between chats (the ARIA tabs pattern).
  ui.tabs.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const ids = [...chats.keys()];
    const at = ids.indexOf(active);
    if (at < 0) return;
    const next = ids[(at + (event.key === "ArrowRight" ? 1 : ids.length - 1)) % ids.length];
    select(next);
    chats.get(next).parts.tab.focus();
    event.preventDefault();
  });

  core.on("render", () => {
    for (const chat of chats.values()) renderChat(chat);
    render();
  });
  setInterval(() => {
    const now = Date.now();
    for (const chat of chats.values()) tickChat(chat, now);
  }, 500);

  function on(type, handler) {
    if (!listeners.has(type)) listeners.set(type, []);
    listeners.get(type).push(handler);
  }

  window.voicebotDesktopChat = {
    insertIntoChat,
    on,
    select,
    active: () => active,
    chats: () => [...chats.values()].map((c) => ({ entryId: c.entryId, callId: c.callId, status: c.status })),
  };
  window.insertIntoChat = insertIntoChat;
})();
