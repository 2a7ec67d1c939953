// The voicebot web chat: a conversation with the bot, then with an agent, over one WebSocket
// (/api/chat/ws). Full page at /chat, or inside a company's site through /chat/widget.js, which
// frames /chat?embed=1.
//
// Up:   {"type":"start", "customer"?, "language"?, "resume"?: {"id","key"}}, {"type":"message",
//       "text"}, {"type":"choose","value"}, {"type":"typing"}, {"type":"end"}.
// Down: started, resumed, bot {text, buttons}, customer (our own line, as stored), typing
//       {sender}, queued, agent_joined, agent, system, closed, error (docs/channels.md).
//
// The conversation's id and resume key stay in this tab's sessionStorage: a dropped socket or a
// reloaded page reconnects to the same chat while the server keeps it. Plain script, no build
// step. `window.voicebotChat.state` mirrors the chat for tests and scripts.
"use strict";

(() => {
  const { el } = window.voicebotUI;
  const STORE = "voicebot.chat";
  const TYPING_EVERY_MS = 2000; // the customer's typing is sent at most this often
  const AGENT_TYPING_MS = 4000; // an agent's indicator stays this long after their last event
  const RETRY_MS = [500, 1000, 2000, 4000, 8000];
  const params = new URLSearchParams(location.search);
  const embedded = params.get("embed") === "1";

  const ui = {
    title: document.getElementById("chat-title"),
    status: document.getElementById("chat-status"),
    log: document.getElementById("chat-log"),
    typing: document.getElementById("chat-typing"),
    buttons: document.getElementById("chat-buttons"),
    form: document.getElementById("chat-form"),
    input: document.getElementById("chat-input"),
    send: document.getElementById("chat-send"),
    end: document.getElementById("chat-end"),
    again: document.getElementById("chat-new"),
    minimise: document.getElementById("chat-minimise"),
  };

  // The test hook. Always the same object, updated in place, so a reference stays current.
  const state = {
    connected: false,
    conversationId: null,
    phase: "connecting", // connecting | bot | queued | agent | closed
    transcript: [], // {role: "bot" | "customer" | "agent" | "system", text, name?}
    buttons: [], // {label, value}: the choices on offer now
    typing: null, // "bot" | "agent" while they are typing
    queued: null, // {queue, position, estimated_wait} after a handoff
    agent: null, // {name} once an agent has joined
    closedBy: null,
    errors: [],
    reconnects: 0,
    embedded,
  };

  let ws = null;
  let retries = 0;
  let lastTyping = 0;
  let agentTypingTimer = null;
  let stopped = false; // the chat moved to another window: no reconnecting from here
  let identity = null; // the signed token the company's page handed to the frame

  const title = params.get("title");
  if (title) setTitle(title);
  if (embedded) {
    document.body.classList.add("embedded");
    ui.minimise.hidden = false;
  }

  // --- the socket ------------------------------------------------------------------------

  function saved() {
    try {
      return JSON.parse(sessionStorage.getItem(STORE) || "null");
    } catch (_) {
      return null;
    }
  }

  function save(id, key) {
    try {
      sessionStorage.setItem(STORE, JSON.stringify({ id, key }));
    } catch (_) {
      /* storage off (private mode): the chat works, only without resuming */
    }
  }

  function forget() {
    try {
      sessionStorage.removeItem(STORE);
    } catch (_) {
      /* nothing kept */
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${location.host}/api/chat/ws`);
    const socket = ws;
    socket.addEventListener("open", () => {
      state.connected = true;
      retries = 0;
      const start = { type: "start" };
      const resume = saved();
      if (resume && resume.id && resume.key) start.resume = resume;
      if (identity) start.customer = identity;
      const language = params.get("language");
      if (language) start.language = language;
      socket.send(JSON.stringify(start));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      receive(message);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== ws) return;
      state.connected = false;
      setControls();
      if (event.code === 4409) {
        stopped = true;
        setStatus("This chat continues in another window.");
        return;
      }
      if (state.phase === "closed" || stopped) return;
      const wait = RETRY_MS[Math.min(retries, RETRY_MS.length - 1)];
      retries += 1;
      state.reconnects += 1;
      setStatus("Connection lost — reconnecting…", true);
      setTimeout(connect, wait);
    });
  }

  function sendJSON(message) {
    if (ws === null || ws.readyState !== WebSocket.OPEN) {
      state.errors.push("not connected");
      setStatus("Not connected — reconnecting…", true);
      return false;
    }
    ws.send(JSON.stringify(message));
    return true;
  }

  // --- what the server says -----------------------------------------------------------

  function receive(message) {
    switch (message.type) {
      case "started":
        save(message.conversation_id, message.resume_key);
        state.conversationId = message.conversation_id;
        state.phase = "bot";
        if (!title && message.bot) setTitle(message.bot);
        setStatus("Connected");
        break;
      case "resumed":
        save(message.conversation_id, message.resume_key);
        state.conversationId = message.conversation_id;
        state.phase = message.phase;
        state.transcript.length = 0;
        ui.log.replaceChildren();
        state.agent = message.phase === "agent" ? { name: message.agent_name || null } : null;
        for (const item of message.messages || []) show(item);
        setStatus(state.phase === "closed" ? "The chat has ended." : "Reconnected");
        break;
      case "typing":
        showTyping(message.active === false ? null : message.sender);
        return;
      case "error":
        state.errors.push(message.message);
        setStatus(message.message, true);
        showTyping(null);
        break;
      default:
        show(message);
    }
    setControls();
  }

  // One line of the conversation (live, or replayed on a resume).
  function show(message) {
    switch (message.type) {
      case "bot":
        showTyping(null);
        if (message.text) addLine("bot", message.text);
        setButtons(message.buttons || []);
        break;
      case "customer":
        addLine("customer", message.text);
        setButtons([]);
        break;
      case "queued":
        state.phase = state.phase === "agent" ? "agent" : "queued";
        state.queued = {
          queue: message.queue,
          position: message.position ?? null,
          estimated_wait: message.estimated_wait ?? null,
        };
        addLine("system", waitingText(message));
        break;
      case "agent_joined":
        state.phase = "agent";
        state.agent = { name: message.name || null };
        addLine("system", message.name ? `An agent has joined: ${message.name}.` : "An agent has joined.");
        setStatus(message.name ? `Chatting with ${message.name}` : "Chatting with an agent");
        break;
      case "agent":
        if (state.typing === "agent") showTyping(null);
        addLine("agent", message.text, message.name || (state.agent && state.agent.name));
        break;
      case "system":
        addLine("system", message.text);
        break;
      case "closed":
        state.phase = "closed";
        state.closedBy = message.by || null;
        setButtons([]);
        showTyping(null);
        addLine("system", "The chat has ended.");
        setStatus("The chat has ended.");
        forget();
        break;
      default:
        break;
    }
  }

  function waitingText(message) {
    const wait = typeof message.estimated_wait === "number" && message.estimated_wait > 0
      ? ` The estimated wait is about ${Math.max(1, Math.round(message.estimated_wait / 60))} minute(s).`
      : "";
    return `Waiting for an agent.${wait}`;
  }

  // --- the page ---------------------------------------------------------------------------

  function setTitle(text) {
    ui.title.textContent = text;
    document.title = text;
  }

  function setStatus(text, error = false) {
    ui.status.textContent = text;
    ui.status.classList.toggle("error", error);
  }

  function addLine(role, text, name) {
    const line = { role, text: String(text ?? "") };
    if (name) line.name = name;
    state.transcript.push(line);
    const who = { bot: "Bot", customer: "You", agent: name || "Agent", system: null }[role];
    const item = el("li", { cls: `chat-line chat-${role}` }, [
      who ? el("span", { cls: "chat-who", text: who }) : null,
      el("span", { cls: "chat-text", text: line.text }),
    ]);
    ui.log.appendChild(item);
    item.scrollIntoView({ block: "end" });
  }

  function setButtons(buttons) {
    state.buttons = buttons.map((b) => ({ label: b.label, value: b.value }));
    ui.buttons.replaceChildren(
      ...state.buttons.map((b) => {
        const button = el("button", { cls: "chat-choice", text: b.label, attrs: { type: "button" } });
        button.dataset.value = b.value;
        return button;
      })
    );
    ui.buttons.hidden = state.buttons.length === 0;
  }

  function showTyping(sender) {
    state.typing = sender;
    clearTimeout(agentTypingTimer);
    if (sender === "agent") {
      agentTypingTimer = setTimeout(() => showTyping(null), AGENT_TYPING_MS);
    }
    const names = { bot: "The bot is typing…", agent: "The agent is typing…" };
    ui.typing.textContent = sender ? names[sender] || "Typing…" : "";
    ui.typing.hidden = !sender;
  }

  function setControls() {
    const open = state.connected && state.phase !== "closed" && state.phase !== "connecting";
    ui.input.disabled = !open;
    ui.send.disabled = !open;
    ui.end.disabled = !open;
    ui.again.hidden = state.phase !== "closed";
    for (const button of ui.buttons.querySelectorAll("button")) button.disabled = !open;
  }

  // --- what the customer does -------------------------------------------------------------

  function sendText() {
    const text = ui.input.value.trim();
    if (!text) return;
    if (text.length > 2000) {
      setStatus("Messages are at most 2000 characters.", true);
      return;
    }
    if (sendJSON({ type: "message", text })) ui.input.value = "";
  }

  function choose(value) {
    sendJSON({ type: "choose", value });
  }

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendText();
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      sendText();
    }
  });
  ui.input.addEventListener("input", () => {
    // Only an agent is told: the bot does not wait for anyone to finish.
    if (state.phase !== "queued" && state.phase !== "agent") return;
    const now = Date.now();
    if (now - lastTyping < TYPING_EVERY_MS) return;
    lastTyping = now;
    sendJSON({ type: "typing" });
  });
  ui.buttons.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-value]");
    if (button) choose(button.dataset.value);
  });
  ui.end.addEventListener("click", () => sendJSON({ type: "end" }));
  ui.again.addEventListener("click", () => {
    forget();
    state.transcript.length = 0;
    ui.log.replaceChildren();
    Object.assign(state, {
      phase: "connecting", conversationId: null, queued: null, agent: null, closedBy: null,
    });
    setButtons([]);
    if (ws) ws.close();
    ws = null;
    connect();
  });
  ui.minimise.addEventListener("click", () => {
    window.parent.postMessage({ type: "voicebot-chat-minimise" }, "*");
  });

  window.voicebotChat = { state, send: (text) => sendJSON({ type: "message", text }), choose };

  // In the widget's frame with a signed identity, the company's page hands the token over by
  // postMessage (never in the frame's URL, which servers and proxies log).
  if (embedded && params.get("identity") === "1") {
    let started = false;
    const begin = () => {
      if (!started) {
        started = true;
        connect();
      }
    };
    window.addEventListener("message", (event) => {
      if (event.source !== window.parent) return;
      const data = event.data || {};
      if (data.type === "voicebot-chat-identity" && typeof data.token === "string") {
        identity = data.token;
        begin();
      }
    });
    window.parent.postMessage({ type: "voicebot-chat-ready" }, "*");
    setTimeout(begin, 3000); // no token after all: chat anonymously
  } else {
    connect();
  }
  setButtons([]);
  setControls();
})();
