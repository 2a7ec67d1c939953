// Sign-in and the live connection, shared by the voicebot pages (needs common/ui.js first).
//
// REST, same-origin, the session is an HttpOnly cookie: GET /api/auth/me, POST
// /api/auth/login, POST /api/auth/logout. Adds to `window.voicebotUI`:
// - whoAmI(): who is signed in ({user}) or why nobody is ({user: null, message}).
// - loginForm(elements, {beforeSubmit, onSignedIn}): the sign-in form's behaviour.
// - signOut(): ends the session on the server.
// - errorDetail(response): the words to show for a failed request.
// - getJSON(url): a GET that tells 401 (signed out) and 403 (not allowed) apart.
// - ReconnectingSocket: a JSON WebSocket that pings, notices a silent server, reconnects with
//   backoff (checking the session first), and hands the close codes that mean "stop" to the
//   page: 4401 session expired, 4001 taken over by another window, 4403 not allowed.
"use strict";

(() => {
  const ns = (window.voicebotUI = window.voicebotUI || {});

  const UNREACHABLE = "Could not reach the server. Check the connection and try again.";
  const CLOSE_SESSION_EXPIRED = 4401;
  const CLOSE_TAKEN_OVER = 4001;
  const CLOSE_FORBIDDEN = 4403;

  async function errorDetail(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON: a proxy's error page, say
    }
    const detail = body && body.detail;
    if (typeof detail === "string" && detail !== "") return detail;
    if (Array.isArray(detail)) {
      const parts = detail.map((item) => (item && item.msg ? String(item.msg) : "")).filter(Boolean);
      if (parts.length > 0) return parts.join("; ");
    }
    return `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`;
  }

  // {user} when signed in; else {user: null, message} ("" when simply nobody is signed in).
  async function whoAmI() {
    let response;
    try {
      response = await fetch("/api/auth/me", { credentials: "same-origin" });
    } catch {
      return { user: null, message: UNREACHABLE };
    }
    if (response.ok) {
      const user = await response.json().catch(() => null);
      if (user) return { user };
    }
    return {
      user: null,
      message: response.status === 401 || response.ok ? "" : await errorDetail(response),
    };
  }

  // A GET of JSON: {ok: true, data} or {ok: false, status, message} (status 0: unreachable).
  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch {
      return { ok: false, status: 0, message: UNREACHABLE };
    }
    if (!response.ok) return { ok: false, status: response.status, message: await errorDetail(response) };
    try {
      return { ok: true, status: response.status, data: await response.json() };
    } catch {
      return { ok: false, status: response.status, message: "The server's answer was not JSON." };
    }
  }

  // The sign-in form: elements {form, username, password, error, submit}. `beforeSubmit` runs
  // on the click (a user gesture: the desktop unlocks audio there), `onSignedIn(user)` after.
  function loginForm(elements, { beforeSubmit = null, onSignedIn }) {
    const { form, username, password, error, submit } = elements;
    const label = submit.textContent;

    function setError(text, kind = "error") {
      error.textContent = text;
      error.dataset.kind = kind;
    }

    async function onSubmit(event) {
      event.preventDefault();
      const name = username.value.trim();
      const secret = password.value;
      if (name === "" || secret === "") {
        setError("Enter your username and password.");
        (name === "" ? username : password).focus();
        return;
      }
      if (beforeSubmit) beforeSubmit();
      setError("");
      submit.disabled = true;
      submit.textContent = "Signing in…";
      try {
        const response = await fetch("/api/auth/login", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ username: name, password: secret }),
        });
        if (!response.ok) {
          setError(await errorDetail(response));
          password.select();
          password.focus();
          return;
        }
        const user = await response.json();
        password.value = "";
        onSignedIn(user);
      } catch {
        setError(UNREACHABLE);
      } finally {
        submit.disabled = false;
        submit.textContent = label;
      }
    }

    form.addEventListener("submit", onSubmit);
    return {
      setError,
      // The field to type in next: the username, or the password once a name is there.
      focus() {
        (username.value === "" ? username : password).focus();
      },
    };
  }

  async function signOut() {
    try {
      await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
    } catch {
      // the cookie may outlive this; the server expires it on its own
    }
  }

  // A JSON WebSocket to `path` on this server that stays up while wanted.
  //
  // Options: onMessage(message) for each JSON object received; onSocket(socket or null) as the
  // socket comes and goes; onOpen(); onSessionExpired() (close 4401, or the session check
  // before a reconnection answers 401); onTakenOver() (4001); onForbidden() (4403); onUser(user)
  // (the session check's answer); onRetrying(retryNow) as a reconnection is scheduled; onGone()
  // after any unexpected close has been handled. On 4401, 4001 and 4403 it stops (wanted false)
  // and does not reconnect by itself.
  class ReconnectingSocket {
    constructor(path, options = {}) {
      this.path = path;
      this.options = options;
      this.pingMs = options.pingMs || 20000;
      this.staleMs = options.staleMs || 50000; // nothing heard (pongs included): the link is dead
      this.backoffMs = options.backoffMs || [1000, 2000, 4000, 8000, 15000, 30000];
      this.closeReason = options.closeReason || "closed by the page";
      this.ws = null;
      this.wanted = false;
      this.attempt = 0; // reconnect attempts since the last resetBackoff()
      this.reconnectTimer = null;
      this.pingTimer = null;
      this.lastHeardAt = 0;
    }

    get open() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN;
    }

    url() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}${this.path}`;
    }

    _call(name, ...args) {
      const handler = this.options[name];
      return typeof handler === "function" ? handler(...args) : undefined;
    }

    _setSocket(sock) {
      this.ws = sock;
      this._call("onSocket", sock);
    }

    connect() {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.close();
      this.wanted = true;
      const sock = new WebSocket(this.url());
      this._setSocket(sock);
      this.lastHeardAt = Date.now();
      sock.onopen = () => {
        if (this.ws !== sock) return;
        this.lastHeardAt = Date.now();
        this._startPing();
        this._call("onOpen");
      };
      sock.onmessage = (event) => {
        if (this.ws !== sock || typeof event.data !== "string") return;
        this.lastHeardAt = Date.now();
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return; // the server only sends JSON; anything else is not ours to show
        }
        if (!message || typeof message !== "object") return;
        this._call("onMessage", message);
      };
      sock.onclose = (event) => {
        if (this.ws !== sock) return;
        this._gone(event.code);
      };
    }

    // Our side drops the socket (sign-out, a fresh connect); its close event is then ignored.
    close() {
      this._stopPing();
      this.wanted = false;
      const sock = this.ws;
      this._setSocket(null);
      if (sock && sock.readyState <= WebSocket.OPEN) sock.close(1000, this.closeReason);
    }

    // After a successful start (the server's hello): the next loss retries quickly again.
    resetBackoff() {
      this.attempt = 0;
    }

    send(message) {
      if (!this.open) return false;
      this.ws.send(JSON.stringify(message));
      return true;
    }

    retryNow() {
      return this._reconnect();
    }

    _gone(code) {
      this._setSocket(null);
      this._stopPing();
      if (!this.wanted) return;
      if (code === CLOSE_SESSION_EXPIRED) {
        this.wanted = false;
        this._call("onSessionExpired");
      } else if (code === CLOSE_TAKEN_OVER) {
        this.wanted = false;
        this._call("onTakenOver");
      } else if (code === CLOSE_FORBIDDEN) {
        this.wanted = false;
        this._call("onForbidden");
      } else {
        this._scheduleReconnect();
      }
      this._call("onGone", code);
    }

    _scheduleReconnect() {
      const base = this.backoffMs[Math.min(this.attempt, this.backoffMs.length - 1)];
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      this.attempt += 1;
      this._call("onRetrying", () => this._reconnect(), delay);
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = setTimeout(() => this._reconnect(), delay);
    }

    // Before reconnecting, the session is checked: a server that refuses the socket during
    // the handshake shows up here as a bare 1006, and an expired cookie must not loop forever.
    async _reconnect() {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      if (!this.wanted) return;
      try {
        const response = await fetch("/api/auth/me", { credentials: "same-origin" });
        if (!this.wanted) return;
        if (response.status === 401) {
          this.wanted = false;
          this._call("onSessionExpired");
          return;
        }
        if (response.ok) {
          const user = await response.json().catch(() => null);
          if (user) this._call("onUser", user);
        }
      } catch {
        // the server is still away; the socket attempt below fails and backs off again
      }
      if (this.wanted && this.ws === null) this.connect();
    }

    _startPing() {
      this._stopPing();
      this.pingTimer = setInterval(() => {
        const sock = this.ws;
        if (!sock) return;
        if (Date.now() - this.lastHeardAt > this.staleMs) {
          // The server has gone quiet without closing: drop the socket and start over.
          this.ws = null;
          try {
            sock.close(4000, "no response");
          } catch {
            // already closing
          }
          this._gone(1006);
          return;
        }
        if (sock.readyState === WebSocket.OPEN) sock.send(JSON.stringify({ type: "ping" }));
      }, this.pingMs);
    }

    _stopPing() {
      clearInterval(this.pingTimer);
      this.pingTimer = null;
    }
  }

  Object.assign(ns, {
    errorDetail, whoAmI, getJSON, loginForm, signOut, ReconnectingSocket,
    CLOSE_SESSION_EXPIRED, CLOSE_TAKEN_OVER, CLOSE_FORBIDDEN,
  });
})();
