// The voicebot chat widget for a company's own site. Add, once per page:
//
//   <script src="https://bot.example.com/chat/widget.js" data-title="Chat with us" async></script>
//
// Optional attributes: data-language="es-ES"; data-customer="<signed identity token>" (made on
// the site's server, docs/channels.md); data-position="left". The site's CSP (if it has one)
// must allow script-src and frame-src https://bot.example.com, and the bot server's
// VOICEBOT_CHAT_ORIGINS must list the site's origin (or the frame is refused).
//
// It adds a launcher button; the chat itself runs in a frame of /chat?embed=1 from the bot
// server, so the site's scripts never see the conversation and the bot's never see the site.
// Nothing loads until the button is first pressed. `window.voicebotWidget` is for tests.
"use strict";

(() => {
  const script = document.currentScript;
  if (!script || window.voicebotWidget) return;
  const origin = new URL(script.src, location.href).origin;
  const title = script.dataset.title || "Chat with us";
  const token = script.dataset.customer || "";
  const left = script.dataset.position === "left";
  const side = left ? "left" : "right";

  const widget = { open: false, frame: null, button: null, origin };
  window.voicebotWidget = widget;

  const button = document.createElement("button");
  button.type = "button";
  button.textContent = title;
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "voicebot-chat-frame");
  button.setAttribute("data-voicebot-chat", "launcher");
  Object.assign(button.style, {
    position: "fixed", bottom: "1rem", [side]: "1rem", zIndex: "2147483646",
    padding: "0.75rem 1.1rem", border: "none", borderRadius: "2rem", cursor: "pointer",
    font: "600 1rem system-ui, sans-serif", color: "#fff", background: "#1f7a4d",
    boxShadow: "0 2px 10px rgba(0,0,0,0.25)",
  });
  widget.button = button;

  function frameUrl() {
    const params = new URLSearchParams({ embed: "1", title });
    if (script.dataset.language) params.set("language", script.dataset.language);
    if (token) params.set("identity", "1");
    return `${origin}/chat?${params}`;
  }

  function makeFrame() {
    const frame = document.createElement("iframe");
    frame.id = "voicebot-chat-frame";
    frame.title = title;
    frame.src = frameUrl();
    frame.setAttribute("data-voicebot-chat", "frame");
    Object.assign(frame.style, {
      position: "fixed", bottom: "4.5rem", [side]: "1rem", zIndex: "2147483647",
      width: "min(24rem, calc(100vw - 2rem))", height: "min(36rem, calc(100vh - 6rem))",
      border: "1px solid #d0d4da", borderRadius: "0.75rem", background: "#fff",
      boxShadow: "0 4px 24px rgba(0,0,0,0.2)",
    });
    document.body.appendChild(frame);
    return frame;
  }

  function setOpen(open) {
    if (open && widget.frame === null) widget.frame = makeFrame();
    widget.open = open;
    // Hidden, not removed: the conversation goes on while the panel is closed.
    if (widget.frame) widget.frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", String(open));
    if (open && widget.frame) widget.frame.focus();
  }

  button.addEventListener("click", () => setOpen(!widget.open));
  window.addEventListener("message", (event) => {
    if (event.origin !== origin || !widget.frame || event.source !== widget.frame.contentWindow) {
      return;
    }
    const data = event.data || {};
    if (data.type === "voicebot-chat-minimise") {
      setOpen(false);
      button.focus();
    } else if (data.type === "voicebot-chat-ready" && token) {
      // Only to the bot server's frame: the token never goes anywhere else.
      widget.frame.contentWindow.postMessage({ type: "voicebot-chat-identity", token }, origin);
    }
  });

  function mount() {
    document.body.appendChild(button);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
