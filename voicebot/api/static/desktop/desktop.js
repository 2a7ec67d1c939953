// The voicebot agent desktop: sign-in, availability, the screen pop for offered calls, the
// call's audio, wrap-up, and a live view of the queues.
//
// REST (same-origin, the session is an HttpOnly cookie): GET /api/auth/me, POST /api/auth/login,
// POST /api/auth/logout.
// Control: one WebSocket at /api/desktop/ws, JSON text both ways (hello, state, offer,
//   offer_withdrawn, connected, caller_left, call_returned, wrap_up, queues, error, pong down;
//   state, accept, decline, end, wrap_up, start_callback, ping up). Close code 4401 = session expired,
//   4001 = another window took the desktop over; any other close is retried with backoff.
// Audio: the assignment's audio_url, a WebSocket of binary 16-bit LE mono PCM at 16 kHz both
//   ways, handled like the softphone (phone/phone.js): an AudioWorklet resamples the
//   microphone, received chunks are scheduled back to back on the context clock.
// A phone caller (SIP via LiveKit) is in a LiveKit room instead (the assignment's
//   livekit_room): the page asks POST /api/entries/{id}/livekit for a token and joins the room
//   with the vendored livekit-client (vendor/, loaded only then). The agent joins unheard; the
//   worker briefs them, then grants publishing, and the microphone goes on.
//
// Plain script, no build step and nothing fetched from elsewhere: the page has to work on an
// offline contact-centre network. What it shares with the supervisor page (DOM and format
// helpers, the banner, sign-in, the reconnecting socket) is in ../common/ (window.voicebotUI),
// loaded first by index.html. Every piece of call data (caller-controlled text) goes into
// the page through textContent, never as markup. `window.desktop` mirrors the state for tests.
"use strict";

(() => {
  const PCM_RATE = 16000;
  const START_CUSHION_S = 0.08; // first received chunk waits this long, so jitter doesn't gap it
  const MAX_UNSENT_BYTES = 256 * 1024; // ~8 s of audio: beyond that the link is stalled
  const WS_PATH = "/api/desktop/ws";
  // The softphone's capture processor: one copy serves both pages (the API mounts both).
  const WORKLET_URL = "/phone/static/capture-worklet.js";
  // The LiveKit browser SDK (the UMD build: window.LivekitClient), served from this package.
  const LIVEKIT_SCRIPT = "/desktop/static/vendor/livekit-client.umd.js";
  const TICK_MS = 500;
  const CHIME_REPEAT_MS = 5000;
  const TRANSIENT_BANNER_MS = 8000;
  const NOTICE_MS = 7000;
  const MAX_QUEUE_ROWS = 10;
  const SOUND_KEY = "voicebot.desktop.sound";

  const STATE_LABELS = {
    offline: "Offline",
    away: "Away",
    available: "Available",
    offered: "Offer",
    busy: "On a call",
    wrap_up: "Wrap-up",
  };

  const {
    el, parseTime, num, fmtDuration, humanize, display, errorDetail,
  } = window.voicebotUI;

  const $ = (id) => document.getElementById(id);
  const ui = {
    loading: $("loading"),
    loginView: $("login-view"),
    loginForm: $("login-form"),
    username: $("username"),
    password: $("password"),
    loginError: $("login-error"),
    loginSubmit: $("login-submit"),
    agentBar: $("agent-bar"),
    agentName: $("agent-name"),
    agentRole: $("agent-role"),
    agentSkills: $("agent-skills"),
    state: $("state"),
    stateLabel: $("state-label"),
    stateTime: $("state-time"),
    btnAvailable: $("btn-available"),
    btnAway: $("btn-away"),
    btnSound: $("btn-sound"),
    btnSignout: $("btn-signout"),
    banner: $("banner"),
    bannerText: $("banner-text"),
    bannerAction: $("banner-action"),
    bannerClose: $("banner-close"),
    announcer: $("announcer"),
    desktop: $("desktop"),
    work: $("work"),
    notice: $("notice"),
    idle: $("idle"),
    idleTitle: $("idle-title"),
    idleHint: $("idle-hint"),
    offer: $("offer"),
    popHeading: $("pop-heading"),
    popPriority: $("pop-priority"),
    popKind: $("pop-kind"),
    popCountdownBox: $("pop-countdown-box"),
    popCountdown: $("pop-countdown"),
    popCountdownBar: $("pop-countdown-bar"),
    popDuration: $("pop-duration"),
    popCallerName: $("pop-caller-name"),
    popCallerNumber: $("pop-caller-number"),
    popVip: $("pop-vip"),
    popVerified: $("pop-verified"),
    popAttributes: $("pop-attributes"),
    btnAccept: $("btn-accept"),
    btnDecline: $("btn-decline"),
    btnStartCallback: $("btn-start-callback"),
    btnEnd: $("btn-end"),
    audioBox: $("audio-box"),
    audioStatus: $("audio-status"),
    btnAudio: $("btn-audio"),
    btnMute: $("btn-mute"),
    micMeter: $("mic-meter"),
    livekitAudio: $("livekit-audio"),
    callerMeter: $("caller-meter"),
    popIntent: $("pop-intent"),
    popQueue: $("pop-queue"),
    popWaited: $("pop-waited"),
    popLanguage: $("pop-language"),
    popChannel: $("pop-channel"),
    popHistory: $("pop-history"),
    popReason: $("pop-reason"),
    popCallbackRow: $("pop-callback-row"),
    popCallback: $("pop-callback"),
    popFlowRow: $("pop-flow-row"),
    popFlow: $("pop-flow"),
    popSummary: $("pop-summary"),
    popSlots: $("pop-slots"),
    popSentiment: $("pop-sentiment"),
    popSources: $("pop-sources"),
    popTranscript: $("pop-transcript"),
    wrapForm: $("wrapup-form"),
    wrapCountdown: $("wrapup-countdown"),
    wrapContext: $("wrapup-context"),
    wrapCode: $("wrapup-code"),
    wrapNotes: $("wrapup-notes"),
    wrapError: $("wrapup-error"),
    btnWrapup: $("btn-wrapup"),
    queues: $("queues"),
  };

  // The test hook. Always the same object, updated in place, so a reference stays current.
  const desktop = {
    state: null, // the agent's state string, as the server last said
    lastMessage: null, // the last server message object
    socket: null, // the control WebSocket (null while disconnected)
    connected: false, // a hello has arrived on the current socket
    user: null,
    phase: "idle", // idle | offer | connected | ending | wrapup
    current: null, // the assignment on screen
    queues: [],
    wrapUpCodes: [],
    errors: [], // server error messages and local failures
    audio: { connected: false, muted: false, bytesIn: 0, bytesOut: 0, micError: null },
    // A phone caller's LiveKit room: status is null (none), joining, briefing (in the room,
    // not allowed to speak yet), connected, failed or disconnected; message is what is shown.
    livekit: { status: null, room: null, entryId: null, canPublish: false, message: "" },
  };
  window.desktop = desktop;

  // --- the agent and the work on screen ---------------------------------------------------
  const agent = { state: null, since: NaN, wrapUpUntil: NaN }; // times: local-clock ms
  let clockOffset = 0; // server clock minus ours, in ms, when they differ noticeably
  let phase = "idle";
  let current = null; // the assignment of the offer / call / wrap-up
  let enqueuedLocal = NaN; // when the current caller joined the queue, local-clock ms
  let waitedFrozenMs = null; // time in queue, fixed once the call is connected
  let connectedAt = NaN;
  let offerReceivedAt = NaN;
  let offerExpiresAt = NaN;
  let acting = false; // accept sent, answer not in yet
  let callbackStarted = false;
  let wrapEntry = null;
  let wrapEndedBy = null; // "caller" | "agent" | null
  let wrapSubmitting = false;
  let queuesReceivedAt = 0;
  let transcriptToBottom = false;
  let takenOverHere = false; // another window has the desktop; this one waits to be picked

  // --- sound -----------------------------------------------------------------------------
  let audioCtx = null;
  let soundOn = readSoundSetting();
  let chimeTimer = null;
  let line = null; // the call's audio connection
  let lkCall = null; // the phone caller's LiveKit room, while the desktop is in it
  let livekitLoading = null; // the SDK's script, loading or loaded (a promise)

  // --- banner and notices ----------------------------------------------------------------
  const banner = window.voicebotUI.banner(
    { box: ui.banner, text: ui.bannerText, action: ui.bannerAction, close: ui.bannerClose },
    { transientMs: TRANSIENT_BANNER_MS },
  );
  let noticeTimer = null;

  // ======================================================================================
  // small helpers
  // ======================================================================================

  // A server timestamp on our clock.
  function toLocal(iso) {
    const t = parseTime(iso);
    return Number.isFinite(t) ? t - clockOffset : NaN;
  }

  function noteError(message) {
    desktop.errors.push(message);
    if (desktop.errors.length > 50) desktop.errors.shift();
  }

  function announce(text) {
    // Cleared first, so the same words twice in a row are still read out.
    ui.announcer.textContent = "";
    setTimeout(() => { ui.announcer.textContent = text; }, 50);
  }

  function readSoundSetting() {
    try {
      return localStorage.getItem(SOUND_KEY) !== "off";
    } catch {
      return true;
    }
  }

  // ======================================================================================
  // sign-in
  // ======================================================================================

  async function boot() {
    const me = await window.voicebotUI.whoAmI();
    if (me.user) startDesktop(me.user);
    else showLogin(me.message);
  }

  function showLogin(message, kind = "error") {
    takenOverHere = false;
    control.close();
    clearWork();
    emit("reset", null);
    desktop.user = null;
    desktop.state = null;
    desktop.connected = false;
    agent.state = null;
    banner.clearPersistent();
    banner.clearTransient();
    ui.loading.hidden = true;
    ui.desktop.hidden = true;
    ui.agentBar.hidden = true;
    ui.loginView.hidden = false;
    ui.desktop.inert = false;
    ui.desktop.classList.remove("inactive");
    login.setError(message || "", kind);
    document.title = "Sign in — voicebot desktop";
    login.focus();
  }

  function startDesktop(user) {
    desktop.user = user;
    showUser(user);
    ui.loading.hidden = true;
    ui.loginView.hidden = true;
    ui.agentBar.hidden = false;
    ui.desktop.hidden = false;
    login.setError("");
    renderAll();
    control.connect();
  }

  function showUser(user) {
    if (!user) return;
    ui.agentName.textContent = user.display_name || user.username || "Agent";
    ui.agentRole.textContent = user.role ? humanize(user.role) : "";
    // Supervisors and admins also have the wallboard and reports (/supervisor).
    document.getElementById("link-supervisor").hidden = !["supervisor", "admin"].includes(user.role);
    const skills = user.skills && typeof user.skills === "object" ? Object.entries(user.skills) : [];
    ui.agentSkills.textContent = skills.length > 0
      ? `Your skills: ${skills.map(([name, level]) => `${name} ${level}`).join(" · ")}`
      : "";
  }

  async function signOut() {
    if ((phase === "connected" || phase === "offer")
        && !window.confirm("You have a call in progress. Sign out anyway?")) return;
    control.wanted = false;
    ui.btnSignout.disabled = true;
    stopAudio();
    await window.voicebotUI.signOut();
    ui.btnSignout.disabled = false;
    control.close();
    showLogin("You have signed out.", "info");
  }

  // ======================================================================================
  // the control socket
  // ======================================================================================

  // Reconnects with backoff; 4401 (session expired) and 4001 (another window took over) stop it.
  const control = new window.voicebotUI.ReconnectingSocket(WS_PATH, {
    closeReason: "closed by the desktop",
    onSocket: (sock) => {
      desktop.socket = sock;
      desktop.connected = false;
    },
    onMessage: (message) => {
      desktop.lastMessage = message;
      handleMessage(message);
    },
    onSessionExpired: () => sessionExpired(),
    onTakenOver: () => takenOver(),
    onRetrying: (retryNow) => {
      setPersistentBanner("Connection to the server lost — reconnecting…", "warn", {
        label: "Retry now",
        run: retryNow,
      });
    },
    onUser: (user) => {
      desktop.user = user;
      showUser(user);
    },
    onGone: () => renderAll(),
  });

  function sessionExpired() {
    stopAudio();
    showLogin("Your session has expired");
  }

  function takenOver() {
    takenOverHere = true;
    clearWork();
    emit("reset", null);
    clearTimeout(noticeTimer);
    ui.notice.hidden = true;
    ui.desktop.inert = true;
    ui.desktop.classList.add("inactive");
    setPersistentBanner("The desktop was opened in another window", "warn", {
      label: "Use this window",
      run: () => {
        takenOverHere = false;
        ui.desktop.inert = false;
        ui.desktop.classList.remove("inactive");
        setPersistentBanner("Connecting…", "info");
        control.resetBackoff();
        control.connect();
      },
    });
  }

  function send(message) {
    if (!control.send(message)) {
      showTransientBanner("Not connected to the server; try again in a moment.", "error");
      return false;
    }
    return true;
  }

  // ======================================================================================
  // server messages
  // ======================================================================================

  function handleMessage(message) {
    if (typeof message.server_time === "string") noteServerTime(parseTime(message.server_time));
    handleCoreMessage(message);
    emit(message.type, message);
  }

  function handleCoreMessage(message) {
    switch (message.type) {
      case "hello": return onHello(message);
      case "state": return onState(message);
      case "offer": return onOffer(message);
      case "offer_withdrawn": return onOfferWithdrawn(message);
      case "connected": return onConnected(message);
      case "caller_left": return onCallerLeft(message);
      case "call_returned": return onCallReturned(message);
      case "wrap_up": return onWrapUp(message);
      case "queues": return renderQueues(message.queues);
      case "error": return onError(message);
      case "pong": return undefined;
      default: return undefined; // newer server messages are ignored, not fatal
    }
  }

  // The server's clock, when it can be told: timers count from server timestamps, and a
  // desk PC's clock can be minutes out.
  function noteServerTime(serverNow) {
    if (!Number.isFinite(serverNow)) return;
    const difference = serverNow - Date.now();
    clockOffset = Math.abs(difference) > 2000 ? difference : 0;
  }

  function onHello(message) {
    control.resetBackoff();
    desktop.connected = true;
    banner.clearPersistent();
    ui.desktop.inert = false;
    ui.desktop.classList.remove("inactive");
    const info = message.agent || {};
    desktop.user = { ...(desktop.user || {}), ...info };
    showUser(desktop.user);
    desktop.wrapUpCodes = Array.isArray(message.wrap_up_codes) ? message.wrap_up_codes.map(String) : [];
    setAgentState(info.state, info.state_since, info.wrap_up_until);
    renderQueues(message.queues);

    const assignment = message.current && typeof message.current === "object" ? message.current : null;
    if (assignment === null) {
      if (phase !== "idle") clearWork();
    } else if (agent.state === "offered") {
      if (!(phase === "offer" && current && current.entry_id === assignment.entry_id)) {
        showOffer(assignment, message.expires_at || assignment.expires_at || null);
      }
    } else if (agent.state === "wrap_up") {
      current = assignment;
      enterWrapUp(assignment.entry_id, info.wrap_up_until, null);
    } else {
      showConnected(assignment);
    }
    renderAll();
  }

  function onState(message) {
    setAgentState(message.state, message.state_since, message.wrap_up_until);
    if (message.reason) {
      const label = STATE_LABELS[agent.state] || humanize(agent.state);
      showNotice(agent.state === "away" ? `You were set to Away: ${message.reason}` : `${label}: ${message.reason}`,
        "warn");
      announce(`Your state is now ${label}: ${message.reason}`);
    }
    // The state is the server's word on what the agent is doing; the panel follows it.
    const free = agent.state === "available" || agent.state === "away" || agent.state === "offline";
    if (free && phase !== "idle") {
      clearWork();
    } else if (agent.state === "wrap_up" && phase !== "wrapup" && current) {
      enterWrapUp(current.entry_id, message.wrap_up_until, wrapEndedBy);
    } else if (phase === "wrapup" && agent.state === "wrap_up") {
      setWrapDeadline(message.wrap_up_until);
    }
    renderAll();
  }

  function setAgentState(state, since, wrapUpUntil) {
    const changed = state !== agent.state;
    agent.state = typeof state === "string" ? state : "offline";
    const sinceLocal = toLocal(since);
    agent.since = Number.isFinite(sinceLocal) ? sinceLocal : (changed || !Number.isFinite(agent.since) ? Date.now() : agent.since);
    agent.wrapUpUntil = toLocal(wrapUpUntil);
    desktop.state = agent.state;
  }

  function onOffer(message) {
    const assignment = message.assignment;
    if (!assignment || typeof assignment !== "object") return;
    if (typeof message.server_time !== "string") {
      // The caller has waited waited_seconds since enqueued_at: that dates the message.
      const enqueued = parseTime(assignment.enqueued_at);
      const waited = num(assignment.waited_seconds);
      if (Number.isFinite(enqueued) && waited !== null) noteServerTime(enqueued + waited * 1000);
    }
    showOffer(assignment, message.expires_at);
    renderAll();
  }

  function showOffer(assignment, expiresAt) {
    stopAudio();
    current = assignment;
    phase = "offer";
    acting = false;
    callbackStarted = false;
    waitedFrozenMs = null;
    enqueuedLocal = enqueueTime(assignment);
    offerReceivedAt = Date.now();
    offerExpiresAt = toLocal(expiresAt);
    fillPop(assignment);
    startChime();
    const caller = (assignment.packet && assignment.packet.caller) || {};
    const who = caller.name || caller.number || "unknown caller";
    const what = assignment.kind === "callback" ? "Callback request" : "Incoming call";
    const vip = caller.vip ? "VIP. " : "";
    announce(`${what}: ${vip}${who}, ${assignment.queue || "no queue"} queue, ${assignment.priority || "normal"} priority.`);
  }

  function onOfferWithdrawn(message) {
    if (phase === "offer" && current && (!message.entry_id || message.entry_id === current.entry_id)) {
      clearWork();
      const reason = message.reason ? `: ${message.reason}` : "";
      showNotice(`Offer withdrawn${reason}`, "warn");
      announce(`Offer withdrawn${reason}`);
      renderAll();
    }
  }

  function onConnected(message) {
    const assignment = message.assignment;
    if (!assignment || typeof assignment !== "object") return;
    showConnected(assignment);
    renderAll();
  }

  function showConnected(assignment) {
    const same = current && current.entry_id === assignment.entry_id && phase === "connected";
    stopChime();
    if (!same) {
      const sameEntry = current && current.entry_id === assignment.entry_id;
      if (!sameEntry) enqueuedLocal = enqueueTime(assignment);
      waitedFrozenMs = Number.isFinite(enqueuedLocal) ? Date.now() - enqueuedLocal : null;
      connectedAt = Date.now();
      callbackStarted = false;
      const caller = (assignment.packet && assignment.packet.caller) || {};
      announce(`Connected to ${caller.name || caller.number || "the caller"}.`);
    }
    current = assignment;
    phase = "connected";
    acting = false;
    fillPop(assignment);
    if (assignment.livekit_room) {
      // A phone caller: join their LiveKit room, unless this desktop is in it already (a
      // repeated connected message, or a hello after the control socket reconnected).
      if (!lkCall || lkCall.entryId !== assignment.entry_id) joinRoom(assignment);
    } else if (assignment.audio_url) {
      if (!line || line.url !== assignment.audio_url) {
        if (audioCtx && audioCtx.state === "running") {
          connectAudio(assignment);
        } else {
          stopAudio();
          setAudioStatus("Audio ready: press Connect audio to talk to the caller.", "");
        }
      }
    } else {
      stopAudio();
      setAudioStatus(assignment.kind === "callback"
        ? "Press Start callback to dial the customer."
        : "This call's audio is on your phone line, not in the browser.", "");
    }
  }

  function onCallerLeft(message) {
    if (!current || (message.entry_id && message.entry_id !== current.entry_id)) return;
    if (phase === "offer") {
      clearWork();
      showNotice("Offer withdrawn: the caller hung up", "warn");
      announce("Offer withdrawn: the caller hung up");
    } else if (phase === "connected" || phase === "ending") {
      stopAudio();
      announce("The caller hung up.");
      enterWrapUp(current.entry_id, undefined, "caller");
    } else if (phase === "wrapup") {
      wrapEndedBy = "caller";
      showWrapContext();
    }
    renderAll();
  }

  // A phone caller went back to the queue: this desktop never joined their room in time, or
  // dropped out of it. The call is no longer this agent's (they are set away by the server).
  function onCallReturned(message) {
    if (!current || (message.entry_id && message.entry_id !== current.entry_id)) return;
    stopAudio();
    clearWork();
    const reason = message.reason ? `: ${message.reason}` : "";
    showNotice(`The caller went back to the queue${reason}`, "warn");
    announce(`The caller went back to the queue${reason}`);
    renderAll();
  }

  function onWrapUp(message) {
    const entryId = message.entry_id || (current && current.entry_id) || null;
    enterWrapUp(entryId, message.wrap_up_until, wrapEndedBy || (phase === "ending" ? "agent" : null));
    renderAll();
  }

  function onError(message) {
    const text = String(message.message || "The server reported an error.");
    noteError(text);
    showTransientBanner(text, "error");
    // Whatever was waiting for the server's answer can be tried again.
    acting = false;
    if (wrapSubmitting) {
      wrapSubmitting = false;
      ui.wrapError.textContent = text;
    }
    if (phase === "ending") phase = "connected";
    renderAll();
  }

  function enqueueTime(assignment) {
    const waited = num(assignment.waited_seconds);
    if (waited !== null) return Date.now() - waited * 1000;
    return toLocal(assignment.enqueued_at);
  }

  function clearWork() {
    stopAudio();
    stopChime();
    phase = "idle";
    current = null;
    acting = false;
    callbackStarted = false;
    wrapEntry = null;
    wrapEndedBy = null;
    wrapSubmitting = false;
    offerExpiresAt = NaN;
    ui.wrapNotes.value = "";
    ui.wrapError.textContent = "";
  }

  // ======================================================================================
  // actions
  // ======================================================================================

  function setAvailability(state) {
    unlockAudio();
    send({ type: "state", state });
  }

  function accept() {
    if (phase !== "offer" || !current || acting) return;
    unlockAudio(); // a click: the audio context may start now, ready for the call
    if (send({ type: "accept", entry_id: current.entry_id })) {
      acting = true;
      stopChime();
      renderAll();
    }
  }

  function decline() {
    if (phase !== "offer" || !current) return;
    if (send({ type: "decline", entry_id: current.entry_id })) {
      clearWork();
      showNotice("Offer declined.", "info");
      renderAll();
    }
  }

  function endCall() {
    if (phase !== "connected" || !current) return;
    if (send({ type: "end", entry_id: current.entry_id })) {
      stopAudio();
      phase = "ending";
      wrapEndedBy = "agent";
      renderAll();
    }
  }

  function startCallback() {
    if (phase !== "connected" || !current || current.kind !== "callback") return;
    unlockAudio();
    if (send({ type: "start_callback", entry_id: current.entry_id })) {
      callbackStarted = true;
      renderAll();
    }
  }

  function submitWrapUp(event) {
    event.preventDefault();
    if (phase !== "wrapup" || wrapSubmitting) return;
    const codes = desktop.wrapUpCodes;
    const code = codes.length > 0 ? ui.wrapCode.value : null;
    if (codes.length > 0 && !code) {
      ui.wrapError.textContent = "Choose an outcome.";
      ui.wrapCode.focus();
      return;
    }
    ui.wrapError.textContent = "";
    if (send({ type: "wrap_up", entry_id: wrapEntry, code, notes: ui.wrapNotes.value.trim() })) {
      wrapSubmitting = true;
      renderAll();
    }
  }

  // ======================================================================================
  // wrap-up
  // ======================================================================================

  function enterWrapUp(entryId, until, endedBy) {
    const same = phase === "wrapup" && wrapEntry === entryId;
    stopAudio();
    stopChime();
    if (endedBy) wrapEndedBy = endedBy;
    setWrapDeadline(until);
    if (same) {
      showWrapContext();
      return;
    }
    phase = "wrapup";
    wrapEntry = entryId;
    wrapSubmitting = false;
    fillWrapCodes();
    ui.wrapNotes.value = "";
    ui.wrapError.textContent = "";
    showWrapContext();
    renderAll();
    // The agent's next job is this form: take them there.
    ui.wrapCode.focus({ preventScroll: false });
  }

  // undefined: no word on the deadline (keep it); null: no deadline.
  function setWrapDeadline(until) {
    if (until === undefined) return;
    agent.wrapUpUntil = toLocal(until);
  }

  function fillWrapCodes() {
    const codes = desktop.wrapUpCodes;
    const previous = ui.wrapCode.value;
    const options = [el("option", { text: "Choose an outcome…", attrs: { value: "" } })];
    for (const code of codes) options.push(el("option", { text: humanize(code), attrs: { value: code } }));
    ui.wrapCode.replaceChildren(...options);
    if (codes.includes(previous)) ui.wrapCode.value = previous;
    const none = codes.length === 0;
    ui.wrapCode.hidden = none;
    ui.wrapCode.labels.forEach((label) => { label.hidden = none; });
  }

  function showWrapContext() {
    const parts = [];
    if (current && current.entry_id === wrapEntry) {
      const caller = (current.packet && current.packet.caller) || {};
      const who = [caller.name, caller.number].filter(Boolean).join(", ") || "the caller";
      parts.push(`${current.kind === "callback" ? "Callback to" : "Call with"} ${who}`);
      if (current.queue) parts.push(`${current.queue} queue`);
    }
    if (wrapEndedBy === "caller") parts.push("the caller hung up");
    else if (wrapEndedBy === "agent") parts.push("you ended the call");
    ui.wrapContext.textContent = parts.length > 0 ? `${parts.join(" · ")}.` : "";
  }

  // ======================================================================================
  // the screen pop (rendered by screenpop.js)
  // ======================================================================================

  const popRefs = {
    root: ui.offer,
    callerName: ui.popCallerName,
    callerNumber: ui.popCallerNumber,
    vip: ui.popVip,
    verified: ui.popVerified,
    attributes: ui.popAttributes,
    priority: ui.popPriority,
    kind: ui.popKind,
    intent: ui.popIntent,
    queue: ui.popQueue,
    channel: ui.popChannel,
    language: ui.popLanguage,
    reason: ui.popReason,
    callbackRow: ui.popCallbackRow,
    callback: ui.popCallback,
    flowRow: ui.popFlowRow,
    flow: ui.popFlow,
    summary: ui.popSummary,
    history: ui.popHistory,
    slots: ui.popSlots,
    sentiment: ui.popSentiment,
    sources: ui.popSources,
    transcript: ui.popTranscript,
  };

  function fillPop(a) {
    window.voicebotScreenPop.fill(popRefs, a, { toLocal });
    // The latest words matter most: start at the bottom (once the pop is on screen).
    transcriptToBottom = true;
  }

  // ======================================================================================
  // the queues
  // ======================================================================================

  function renderQueues(queues) {
    if (!Array.isArray(queues)) return;
    desktop.queues = queues;
    queuesReceivedAt = Date.now();
    if (queues.length === 0) {
      ui.queues.replaceChildren(el("p", { cls: "empty", text: "No queues to show." }));
      return;
    }
    ui.queues.replaceChildren(...queues.filter((q) => q && typeof q === "object").map(queueCard));
    tickQueues();
  }

  function queueCard(q) {
    const name = String(q.name || "queue");
    const waiting = num(q.waiting) ?? 0;
    const available = num(q.agents_available) ?? 0;
    const staffed = num(q.agents_staffed) ?? 0;
    const card = el("article", { cls: "card queue", attrs: { "aria-label": `${name} queue`, "data-queue": name } });
    card.classList.toggle("busy", waiting > 0 && available === 0);

    card.appendChild(el("div", { cls: "queue-head" }, [
      el("h3", { cls: "queue-name", text: name }),
      el("div", { cls: "queue-waiting", attrs: { "data-field": "waiting" } }, [
        document.createTextNode(String(waiting)),
        el("small", { text: "waiting" }),
      ]),
    ]));

    const stats = el("p", { cls: "queue-stats" });
    stats.appendChild(stat("Agents available ", `${available} / ${staffed}`, "agents"));
    const oldest = num(q.oldest_wait);
    if (oldest !== null && waiting > 0) {
      const value = stat("Oldest ", fmtDuration(oldest * 1000), "oldest");
      value.lastChild.dataset.since = String(queuesReceivedAt - oldest * 1000);
      stats.appendChild(value);
    }
    const estimate = num(q.estimated_wait);
    if (estimate !== null) stats.appendChild(stat("Est. wait ", `~${fmtDuration(estimate * 1000)}`, "estimate"));
    card.appendChild(stats);

    const entries = Array.isArray(q.entries) ? q.entries.filter((e) => e && typeof e === "object") : [];
    if (entries.length > 0) {
      const shown = entries.slice(0, MAX_QUEUE_ROWS);
      const body = el("tbody", {}, shown.map(entryRow));
      card.appendChild(el("table", { cls: "entries" }, [
        el("caption", { cls: "visually-hidden", text: `Callers in the ${name} queue` }),
        el("thead", {}, [el("tr", {}, ["#", "Caller", "Intent", "Priority", "Waited", "Status"].map(
          (heading) => el("th", { text: heading, attrs: { scope: "col" } }),
        ))]),
        body,
      ]));
      const more = entries.length - shown.length;
      if (more > 0) card.appendChild(el("p", { cls: "more", text: `and ${more} more` }));
    } else {
      card.appendChild(el("p", { cls: "empty", text: "Nobody waiting." }));
    }
    return card;
  }

  function stat(label, value, field) {
    return el("span", { attrs: { "data-field": field } }, [
      document.createTextNode(label),
      el("b", { text: value }),
    ]);
  }

  function entryRow(entry) {
    const status = String(entry.status || "waiting");
    const row = el("tr", { attrs: { "data-entry-id": String(entry.entry_id || "") } });
    if (current && entry.entry_id === current.entry_id) row.classList.add("mine");
    const priority = String(entry.priority || "normal");
    const waited = num(entry.waited_seconds);
    const waitedCell = el("td", { cls: "num", text: waited !== null ? fmtDuration(waited * 1000) : "—" });
    if (waited !== null && status !== "connected") waitedCell.dataset.since = String(queuesReceivedAt - waited * 1000);
    const kind = entry.kind === "callback" ? "Callback: " : (entry.media === "chat" ? "Chat: " : "");
    row.append(
      el("td", { cls: "num", text: display(entry.position) }),
      el("td", { cls: "num", text: `${kind}${entry.caller || "—"}` }),
      el("td", { cls: "intent", text: entry.intent || "—", attrs: { title: String(entry.intent || "") } }),
      el("td", {}, [el("span", { cls: "badge priority", text: humanize(priority), attrs: { "data-priority": priority } })]),
      waitedCell,
      el("td", {}, [el("span", { cls: "status", text: humanize(status), attrs: { "data-status": status } })]),
    );
    return row;
  }

  function tickQueues() {
    const now = Date.now();
    for (const node of ui.queues.querySelectorAll("[data-since]")) {
      node.textContent = fmtDuration(now - Number(node.dataset.since));
    }
  }

  // ======================================================================================
  // rendering
  // ======================================================================================

  function renderAll() {
    desktop.phase = phase;
    desktop.current = current;
    renderHeader();
    renderWork();
    tick();
    emit("render", null);
  }

  function renderHeader() {
    const state = agent.state;
    const live = desktop.connected;
    const label = live ? (STATE_LABELS[state] || humanize(state) || "Offline") : (control.wanted ? "Connecting" : "Offline");
    ui.state.dataset.state = live ? (state || "offline") : "offline";
    ui.stateLabel.textContent = label;
    ui.state.setAttribute("aria-label", `Your state: ${label}`);
    ui.btnAvailable.disabled = !live || !(state === "away" || state === "offline");
    ui.btnAway.disabled = !live || !(state === "available" || state === "offline");
    ui.btnAvailable.setAttribute("aria-current", String(live && state === "available"));
    ui.btnAway.setAttribute("aria-current", String(live && state === "away"));
    ui.btnSound.textContent = soundOn ? "Sound on" : "Sound off";
    ui.btnSound.setAttribute("aria-pressed", String(soundOn));
    if (!ui.desktop.hidden) {
      document.title = phase === "offer"
        ? "● Incoming call — voicebot desktop"
        : `${label} — voicebot desktop`;
    }
  }

  function renderWork() {
    const showPop = phase === "offer" || phase === "connected" || phase === "ending";
    ui.offer.hidden = !showPop;
    ui.wrapForm.hidden = phase !== "wrapup";
    ui.idle.hidden = showPop || phase === "wrapup";

    if (!ui.idle.hidden) {
      const state = desktop.connected ? agent.state : null;
      ui.idle.dataset.state = state || "";
      let title;
      let hint = "";
      if (takenOverHere) {
        title = "In use in another window";
        hint = "Press Use this window to work here instead.";
      } else if (!desktop.connected) {
        title = control.wanted ? "Connecting…" : "Not connected";
      } else if (state === "available") {
        title = "Waiting for calls";
        hint = "New offers appear here with a sound.";
        if (soundOn && !(audioCtx && audioCtx.state === "running")) {
          hint = "Click anywhere on the page to switch on the offer sound.";
        }
      } else if (state === "away") {
        title = "You are away";
        hint = "Press Available when you are ready to take calls.";
      } else if (state === "offline") {
        title = "You are offline";
        hint = "Press Available to start taking calls.";
      } else {
        title = STATE_LABELS[state] || humanize(state);
      }
      ui.idleTitle.textContent = title;
      ui.idleHint.textContent = hint;
    }

    if (showPop) {
      renderPopPhase();
      if (transcriptToBottom) {
        ui.popTranscript.scrollTop = ui.popTranscript.scrollHeight;
        transcriptToBottom = false;
      }
    }
    for (const row of ui.queues.querySelectorAll("tr[data-entry-id]")) {
      row.classList.toggle("mine", !!current && row.dataset.entryId === String(current.entry_id));
    }
    if (phase === "wrapup") {
      ui.btnWrapup.disabled = wrapSubmitting || !desktop.connected;
      ui.btnWrapup.textContent = wrapSubmitting ? "Submitting…" : "Submit wrap-up";
    }
  }

  function renderPopPhase() {
    const offer = phase === "offer";
    const isCallback = current && current.kind === "callback";
    ui.offer.dataset.phase = offer ? "offer" : "connected";
    if (offer) ui.popHeading.textContent = isCallback ? "Callback request" : "Incoming call";
    else if (phase === "ending") ui.popHeading.textContent = "Ending call…";
    else ui.popHeading.textContent = isCallback ? "Callback" : "On call";

    ui.btnAccept.hidden = !offer;
    ui.btnDecline.hidden = !offer;
    ui.btnAccept.disabled = acting || !desktop.connected;
    ui.btnDecline.disabled = acting || !desktop.connected;
    ui.btnAccept.textContent = acting ? "Accepting…" : "Accept";
    ui.popCountdownBox.hidden = !offer || !Number.isFinite(offerExpiresAt);
    ui.popDuration.hidden = offer;

    ui.btnEnd.hidden = offer;
    ui.btnEnd.disabled = phase === "ending" || !desktop.connected;

    const number = current && (current.callback_number
      || (current.packet && current.packet.callback && current.packet.callback.number)) || "";
    ui.btnStartCallback.hidden = offer || !isCallback;
    ui.btnStartCallback.disabled = callbackStarted || phase === "ending" || !desktop.connected;
    ui.btnStartCallback.textContent = callbackStarted
      ? `Calling ${number || "the customer"}…`
      : `Start callback${number ? ` to ${number}` : ""}`;

    ui.audioBox.hidden = offer;
    const inRoom = !!(current && current.livekit_room);
    const hasAudio = !inRoom && !!(current && current.audio_url);
    if (inRoom) {
      // Try again after a failure or a drop; Start audio when the browser blocked playback.
      const retry = !lkCall || lkCall.status === "failed" || lkCall.status === "disconnected";
      ui.btnAudio.hidden = phase !== "connected" || !(retry || (lkCall && lkCall.playbackBlocked));
      ui.btnAudio.textContent = retry ? "Join again" : "Start audio";
      ui.btnMute.hidden = false;
      ui.btnMute.disabled = !(lkCall && lkCall.status === "connected");
    } else {
      ui.btnAudio.hidden = !hasAudio || phase !== "connected" || line !== null;
      ui.btnAudio.textContent = "Connect audio";
      ui.btnMute.hidden = !hasAudio;
      ui.btnMute.disabled = line === null;
    }
    ui.btnMute.textContent = desktop.audio.muted ? "Unmute" : "Mute";
    ui.btnMute.setAttribute("aria-pressed", String(desktop.audio.muted));
    ui.micMeter.closest(".meters").hidden = !hasAudio;
  }

  function tick() {
    const now = Date.now();
    if (Number.isFinite(agent.since) && desktop.connected) {
      ui.stateTime.textContent = fmtDuration(now - agent.since);
    } else {
      ui.stateTime.textContent = "";
    }

    if (phase === "offer" || phase === "connected" || phase === "ending") {
      const waited = phase === "offer" || waitedFrozenMs === null
        ? (Number.isFinite(enqueuedLocal) ? now - enqueuedLocal : null)
        : waitedFrozenMs;
      ui.popWaited.textContent = waited === null ? "—" : fmtDuration(waited);
      if (phase === "offer" && Number.isFinite(offerExpiresAt)) {
        const left = offerExpiresAt - now;
        const total = Math.max(1, offerExpiresAt - offerReceivedAt);
        ui.popCountdown.textContent = left > 0 ? `Answer within ${Math.ceil(left / 1000)} s` : "Expiring…";
        ui.popCountdownBar.style.width = `${Math.max(0, Math.min(100, (left / total) * 100))}%`;
        ui.popCountdownBox.classList.toggle("urgent", left <= 5000);
      } else {
        const since = agent.state === "busy" && Number.isFinite(agent.since) ? agent.since : connectedAt;
        ui.popDuration.textContent = Number.isFinite(since) ? `In call ${fmtDuration(now - since)}` : "";
      }
    }

    if (phase === "wrapup" && Number.isFinite(agent.wrapUpUntil)) {
      const left = agent.wrapUpUntil - now;
      ui.wrapCountdown.hidden = false;
      ui.wrapCountdown.textContent = left > 0 ? `Time left ${fmtDuration(left + 999)}` : "Time is up";
    } else {
      ui.wrapCountdown.hidden = true;
    }
    tickQueues();
  }

  // --- banner and notices --------------------------------------------------------------

  function setPersistentBanner(text, kind, action = null) {
    banner.setPersistent(text, kind, action);
  }

  function showTransientBanner(text, kind = "error") {
    banner.showTransient(text, kind);
  }

  function showNotice(text, kind = "info") {
    ui.notice.textContent = text;
    ui.notice.dataset.kind = kind;
    ui.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { ui.notice.hidden = true; }, NOTICE_MS);
  }

  // ======================================================================================
  // sound: the offer chime
  // ======================================================================================

  // Browsers only let audio start after a user gesture: the context is made (or resumed) on
  // the first click or key press, and kept for the chime and the call's audio.
  function unlockAudio() {
    try {
      if (!audioCtx || audioCtx.state === "closed") {
        audioCtx = new AudioContext({ latencyHint: "interactive" });
        audioCtx.onstatechange = () => renderAll();
      }
      if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
    } catch {
      audioCtx = null; // no Web Audio: the desktop still works, silently
    }
    return audioCtx;
  }

  function startChime() {
    stopChime();
    chime();
    chimeTimer = setInterval(() => {
      if (phase === "offer" && !acting) chime();
    }, CHIME_REPEAT_MS);
  }

  function stopChime() {
    clearInterval(chimeTimer);
    chimeTimer = null;
  }

  // Two tones, high then low, like a desk phone's soft ring.
  function chime() {
    if (!soundOn || !audioCtx || audioCtx.state !== "running") return;
    const ctx = audioCtx;
    const start = ctx.currentTime + 0.02;
    [[880, 0], [659.25, 0.24]].forEach(([hz, offset]) => {
      const t = start + offset;
      const gain = ctx.createGain();
      gain.gain.setValueAtTime(0, t);
      gain.gain.linearRampToValueAtTime(0.18, t + 0.015);
      gain.gain.exponentialRampToValueAtTime(0.001, t + 0.5);
      gain.connect(ctx.destination);
      const osc = ctx.createOscillator();
      osc.type = "sine";
      osc.frequency.value = hz;
      osc.connect(gain);
      osc.start(t);
      osc.stop(t + 0.52);
    });
  }

  function toggleSound() {
    soundOn = !soundOn;
    try {
      localStorage.setItem(SOUND_KEY, soundOn ? "on" : "off");
    } catch {
      // private mode: the choice lasts for this page only
    }
    if (soundOn) {
      unlockAudio();
      setTimeout(chime, 50); // so the agent hears what it sounds like
    }
    renderAll();
  }

  // ======================================================================================
  // the call's audio
  // ======================================================================================

  function audioSocketUrl(audioUrl) {
    const url = new URL(audioUrl, location.href);
    if (url.protocol === "http:") url.protocol = "ws:";
    else if (url.protocol === "https:") url.protocol = "wss:";
    return url.toString();
  }

  function setAudioStatus(text, kind = "") {
    ui.audioStatus.textContent = text;
    ui.audioStatus.dataset.kind = kind;
  }

  function connectAudio(assignment) {
    if (!assignment || !assignment.audio_url) return;
    stopAudio();
    const ctx = unlockAudio();
    if (!ctx) {
      setAudioStatus("This browser cannot play audio (no Web Audio).", "error");
      return;
    }
    let socket;
    try {
      socket = new WebSocket(audioSocketUrl(assignment.audio_url));
    } catch (error) {
      setAudioStatus(`Audio connection failed: ${error.message || error}`, "error");
      return;
    }
    socket.binaryType = "arraybuffer";
    const forLine = {
      url: assignment.audio_url,
      entryId: assignment.entry_id,
      ws: socket,
      audio: ctx,
      playhead: 0,
      sources: new Set(),
      oddByte: null,
      stream: null,
      micNodes: [],
      open: false,
    };
    line = forLine;
    desktop.audio.connected = false;
    desktop.audio.micError = null;
    desktop.audio.bytesIn = 0;
    desktop.audio.bytesOut = 0;
    setAudioStatus("Connecting audio…");
    socket.onopen = () => {
      if (line !== forLine) return;
      forLine.open = true;
      desktop.audio.connected = true;
      showAudioState();
      renderAll();
    };
    socket.onmessage = (event) => {
      if (line !== forLine) return;
      if (typeof event.data === "string") {
        audioEvent(event.data);
      } else {
        playCaller(forLine, event.data);
      }
    };
    socket.onclose = (event) => {
      if (line !== forLine) return;
      stopAudio();
      if (phase === "connected") {
        const why = event.reason ? ` (${event.reason})` : "";
        setAudioStatus(forLine.open ? `Audio disconnected${why}.` : `Could not connect the audio${why}.`, "error");
      }
      renderAll();
    };
    startMicrophone(forLine);
    renderAll();
  }

  function audioEvent(text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return;
    }
    if (event && event.type === "error" && event.message) {
      noteError(String(event.message));
      setAudioStatus(`Audio: ${event.message}`, "error");
    }
  }

  function showAudioState() {
    if (!line) return;
    if (desktop.audio.micError) {
      setAudioStatus(`Audio connected, but the microphone is unavailable (${desktop.audio.micError}).`, "error");
    } else if (desktop.audio.muted) {
      setAudioStatus("Audio connected — your microphone is muted.", "ok");
    } else {
      setAudioStatus(line.open ? "Audio connected." : "Connecting audio…", line.open ? "ok" : "");
    }
  }

  function stopAudio() {
    leaveRoom();
    const ending = line;
    line = null;
    desktop.audio.connected = false;
    showLevel(ui.micMeter, 0);
    showLevel(ui.callerMeter, 0);
    if (!ending) return;
    stopMicrophone(ending);
    for (const source of ending.sources) {
      try {
        source.stop();
      } catch {
        // not started yet on some browsers; it is dropped with the set anyway
      }
    }
    ending.sources.clear();
    if (ending.ws.readyState <= WebSocket.OPEN) ending.ws.close(1000, "call ended");
    if (phase === "connected" || phase === "ending") setAudioStatus("Audio not connected.");
  }

  // Plays one binary message: chunks are scheduled back to back on the context clock, so
  // they join without gaps however unevenly the network delivers them.
  function playCaller(forLine, data) {
    desktop.audio.bytesIn += data.byteLength;
    const samples = window.VoicebotPcm.toFloatSamples(forLine, data);
    if (samples.length === 0) return;
    const audio = forLine.audio;
    let peak = 0;
    for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
    const buffer = audio.createBuffer(1, samples.length, PCM_RATE); // resampled by the context
    buffer.copyToChannel(samples, 0);
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.destination);
    if (forLine.playhead < audio.currentTime + 0.005) {
      forLine.playhead = audio.currentTime + START_CUSHION_S;
    }
    const startAt = forLine.playhead;
    source.start(startAt);
    forLine.playhead += buffer.duration;
    forLine.sources.add(source);
    source.onended = () => forLine.sources.delete(source);
    // The caller's meter moves when the chunk is heard, not when it arrived.
    setTimeout(() => {
      if (line === forLine) showLevel(ui.callerMeter, peak);
    }, Math.max(0, (startAt - audio.currentTime) * 1000));
  }


  async function startMicrophone(forLine) {
    try {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new Error("this page cannot use the microphone (it needs https or localhost)");
      }
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
      });
      if (line !== forLine) { // the call ended while the permission prompt was open
        stream.getTracks().forEach((track) => track.stop());
        return;
      }
      forLine.stream = stream;
      applyMute(forLine);
      const audio = forLine.audio;
      await audio.audioWorklet.addModule(WORKLET_URL);
      if (line !== forLine) {
        stopMicrophone(forLine);
        return;
      }
      const source = audio.createMediaStreamSource(stream);
      const capture = new AudioWorkletNode(audio, "capture-processor", {
        numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      });
      // A silent path to the speakers: the graph only runs nodes that lead to the output.
      const silent = audio.createGain();
      silent.gain.value = 0;
      source.connect(capture).connect(silent).connect(audio.destination);
      capture.port.onmessage = (event) => {
        if (line !== forLine) return; // a chunk still in flight as the call ended
        sendAudio(forLine, event.data.pcm);
        showLevel(ui.micMeter, desktop.audio.muted ? 0 : event.data.level);
      };
      forLine.micNodes = [source, capture, silent];
    } catch (error) {
      if (line !== forLine) return;
      desktop.audio.micError = String(error && error.message ? error.message : error);
      noteError(`Microphone unavailable: ${desktop.audio.micError}`);
      showAudioState();
      if (!forLine.open) {
        setAudioStatus(`Microphone unavailable (${desktop.audio.micError}); you can still hear the caller.`, "error");
      }
    }
  }

  function stopMicrophone(forLine) {
    for (const node of forLine.micNodes) node.disconnect();
    forLine.micNodes = [];
    if (forLine.stream) forLine.stream.getTracks().forEach((track) => track.stop());
    forLine.stream = null;
  }

  function sendAudio(forLine, pcm) {
    const socket = forLine.ws;
    if (socket.readyState !== WebSocket.OPEN) return;
    // Speech is only useful live: on a stalled link, drop audio rather than queue it up.
    if (socket.bufferedAmount > MAX_UNSENT_BYTES) return;
    socket.send(pcm);
    desktop.audio.bytesOut += pcm.byteLength;
  }

  // Muting disables the track: the worklet keeps sending, now silence, so the far end's
  // timing is undisturbed.
  function applyMute(forLine) {
    if (!forLine || !forLine.stream) return;
    for (const track of forLine.stream.getAudioTracks()) track.enabled = !desktop.audio.muted;
  }

  function toggleMute() {
    if (lkCall) {
      muteInRoom(lkCall, !desktop.audio.muted);
      return;
    }
    desktop.audio.muted = !desktop.audio.muted;
    applyMute(line);
    if (desktop.audio.muted) showLevel(ui.micMeter, 0);
    showAudioState();
    renderAll();
  }

  function showLevel(meter, level) {
    // Square root: speech peaks are mostly small, and a linear bar would barely move.
    const value = Math.min(100, Math.round(Math.sqrt(Math.max(0, level)) * 100));
    meter.style.width = `${value}%`;
    meter.setAttribute("aria-valuenow", String(value));
  }

  // ======================================================================================
  // a phone caller's LiveKit room
  // ======================================================================================

  // Why LiveKit closed the room on us, by DisconnectReason name, in words for the agent.
  const ROOM_LEFT_REASONS = {
    ROOM_DELETED: "the call has ended",
    ROOM_CLOSED: "the call has ended",
    PARTICIPANT_REMOVED: "you were removed from the call",
    DUPLICATE_IDENTITY: "you joined it from another window",
    SERVER_SHUTDOWN: "the LiveKit server shut down",
  };

  // The SDK's script, added to the page the first time a phone call needs it: desktops that
  // only take softphone calls never load it.
  function loadLivekit() {
    if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
    if (!livekitLoading) {
      livekitLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = LIVEKIT_SCRIPT;
        script.async = true;
        script.onload = () => {
          if (window.LivekitClient) resolve(window.LivekitClient);
          else reject(new Error("the LiveKit client script did not load properly"));
        };
        script.onerror = () => {
          script.remove();
          reject(new Error("the LiveKit client script could not be loaded"));
        };
        document.head.appendChild(script);
      });
      livekitLoading.catch(() => { livekitLoading = null; }); // the next call tries again
    }
    return livekitLoading;
  }

  function setRoomState(call, status, message, kind = "") {
    call.status = status;
    if (lkCall !== call) return;
    Object.assign(desktop.livekit, {
      status,
      room: call.roomName,
      entryId: call.entryId,
      canPublish: status === "connected",
      message,
    });
    desktop.audio.connected = status === "briefing" || status === "connected";
    setAudioStatus(message, kind);
    renderAll();
  }

  async function joinRoom(assignment) {
    leaveRoom();
    const call = {
      entryId: assignment.entry_id,
      roomName: String(assignment.livekit_room),
      sdk: null,
      room: null,
      status: null,
      playbackBlocked: false,
    };
    lkCall = call;
    desktop.audio.muted = false;
    desktop.audio.micError = null;
    setRoomState(call, "joining", "Joining the caller's room…");
    try {
      const response = await fetch(`/api/entries/${encodeURIComponent(call.entryId)}/livekit`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (lkCall !== call) return;
      if (response.status === 401) {
        sessionExpired();
        return;
      }
      if (!response.ok) throw new Error(await errorDetail(response));
      const grant = await response.json();
      const sdk = await loadLivekit();
      if (lkCall !== call) return;
      if (typeof sdk.setLogLevel === "function") sdk.setLogLevel("warn");
      const room = new sdk.Room({ adaptiveStream: false, dynacast: false });
      call.sdk = sdk;
      call.room = room;
      room.on(sdk.RoomEvent.TrackSubscribed, (track) => {
        if (lkCall !== call || track.kind !== sdk.Track.Kind.Audio) return;
        ui.livekitAudio.appendChild(track.attach());
      });
      room.on(sdk.RoomEvent.TrackUnsubscribed, (track) => {
        for (const element of track.detach()) element.remove();
      });
      room.on(sdk.RoomEvent.ParticipantPermissionsChanged, (_previous, participant) => {
        if (participant === room.localParticipant) permissionsChanged(call);
      });
      room.on(sdk.RoomEvent.AudioPlaybackStatusChanged, () => {
        if (lkCall !== call) return;
        call.playbackBlocked = !room.canPlaybackAudio;
        if (call.playbackBlocked) {
          setAudioStatus("The browser blocked the caller's audio: press Start audio.", "error");
        }
        renderAll();
      });
      room.on(sdk.RoomEvent.Reconnecting, () => {
        if (lkCall === call && call.status !== "joining") {
          setRoomState(call, "reconnecting", "Connection to the caller's room lost — reconnecting…", "error");
        }
      });
      room.on(sdk.RoomEvent.Reconnected, () => {
        if (lkCall === call) {
          call.status = "reconnected";
          permissionsChanged(call);
        }
      });
      room.on(sdk.RoomEvent.Disconnected, (reason) => roomDisconnected(call, reason));
      await room.connect(String(grant.url), String(grant.token));
      if (lkCall !== call) {
        disconnectQuietly(room);
        return;
      }
      permissionsChanged(call);
    } catch (error) {
      if (lkCall !== call) return;
      const why = error && error.message ? String(error.message) : String(error);
      noteError(`Could not join the caller's room: ${why}`);
      if (call.room) disconnectQuietly(call.room);
      setRoomState(call, "failed", `Could not join the caller's room: ${why}`, "error");
    }
  }

  // In the room: the agent is briefed first (they hear the worker, the caller cannot hear
  // them), and may speak once the worker grants publishing.
  function permissionsChanged(call) {
    if (lkCall !== call || !call.room) return;
    const permissions = call.room.localParticipant.permissions;
    if (!(permissions && permissions.canPublish)) {
      setRoomState(call, "briefing", "Briefing… (the caller cannot hear you yet)");
      return;
    }
    if (call.status === "connected") return;
    // Muted stays muted across a reconnection; a new call starts unmuted (joinRoom).
    const muted = desktop.audio.muted;
    setRoomState(call, "connected",
      muted ? "Connected: your microphone is muted." : "Connected: the caller can hear you.", "ok");
    call.room.localParticipant.setMicrophoneEnabled(!muted).catch((error) => microphoneFailed(call, error));
  }

  function microphoneFailed(call, error) {
    if (lkCall !== call) return;
    const why = error && error.message ? String(error.message) : String(error);
    desktop.audio.micError = why;
    noteError(`Microphone unavailable: ${why}`);
    desktop.livekit.message = `Connected, but the microphone is unavailable (${why}).`;
    setAudioStatus(desktop.livekit.message, "error");
  }

  function muteInRoom(call, muted) {
    if (!call.room || call.status !== "connected") return;
    desktop.audio.muted = muted;
    call.room.localParticipant.setMicrophoneEnabled(!muted).catch((error) => microphoneFailed(call, error));
    setAudioStatus(muted ? "Connected: your microphone is muted." : "Connected: the caller can hear you.", "ok");
    renderAll();
  }

  function startRoomAudio(call) {
    call.room.startAudio().then(() => {
      if (lkCall !== call) return;
      call.playbackBlocked = !call.room.canPlaybackAudio;
      setAudioStatus(desktop.livekit.message, call.status === "connected" ? "ok" : "");
      renderAll();
    }).catch(() => {});
  }

  function roomDisconnected(call, reason) {
    // A failed join is reported where connect() fails; this is a room we were in.
    if (lkCall !== call || call.status === "joining" || call.status === "failed") return;
    ui.livekitAudio.replaceChildren();
    const names = call.sdk && call.sdk.DisconnectReason;
    const name = names && reason !== undefined ? names[reason] : null;
    const why = ROOM_LEFT_REASONS[name] || (name ? humanize(String(name)).toLowerCase() : "the connection was lost");
    setRoomState(call, "disconnected", `Disconnected from the caller's room: ${why}.`, "error");
  }

  // Leaves the room (End call, wrap-up, another offer, sign-out, the page closing).
  function leaveRoom() {
    const ending = lkCall;
    lkCall = null;
    if (!ending) return;
    ui.livekitAudio.replaceChildren();
    if (ending.room) disconnectQuietly(ending.room);
    Object.assign(desktop.livekit, { status: null, room: null, entryId: null, canPublish: false, message: "" });
    desktop.audio.connected = false;
    if (phase === "connected" || phase === "ending") setAudioStatus("You left the caller's room.");
  }

  function disconnectQuietly(room) {
    try {
      Promise.resolve(room.disconnect()).catch(() => {});
    } catch {
      // already gone
    }
  }

  // ======================================================================================
  // the desktop's other modules (chat.js, assist.js)
  // ======================================================================================

  // Modules loaded after this script register for server messages by type ("*" for all);
  // the core handles its own types first. Local events: "reset" (signed out or taken over: the work is gone),
  // "render" (after every renderAll).
  const listeners = new Map();

  function on(type, handler) {
    if (!listeners.has(type)) listeners.set(type, []);
    listeners.get(type).push(handler);
  }

  function emit(type, message) {
    for (const handler of [...(listeners.get(type) || []), ...(listeners.get("*") || [])]) {
      try {
        handler(message);
      } catch (error) {
        noteError(`A desktop module failed on ${type}: ${error && error.message ? error.message : error}`);
      }
    }
  }

  window.voicebotDesktop = {
    on,
    send,
    toLocal,
    announce,
    noteError,
    showNotice,
    showTransientBanner,
    unlockAudio,
    chime: () => chime(),
    sessionExpired: () => sessionExpired(),
    isConnected: () => desktop.connected,
    phase: () => phase,
    current: () => current,
    state: desktop,
  };

  // ======================================================================================
  // wiring
  // ======================================================================================

  function wireUp() {
    ui.btnAvailable.addEventListener("click", () => setAvailability("available"));
    ui.btnAway.addEventListener("click", () => setAvailability("away"));
    ui.btnSignout.addEventListener("click", signOut);
    ui.btnSound.addEventListener("click", toggleSound);
    ui.btnAccept.addEventListener("click", accept);
    ui.btnDecline.addEventListener("click", decline);
    ui.btnEnd.addEventListener("click", endCall);
    ui.btnStartCallback.addEventListener("click", startCallback);
    ui.btnAudio.addEventListener("click", () => {
      if (!current) return;
      if (!current.livekit_room) {
        connectAudio(current);
      } else if (lkCall && lkCall.playbackBlocked && lkCall.room) {
        startRoomAudio(lkCall);
      } else {
        joinRoom(current);
      }
    });
    ui.btnMute.addEventListener("click", toggleMute);
    ui.wrapForm.addEventListener("submit", submitWrapUp);
    ui.wrapCode.addEventListener("change", () => { ui.wrapError.textContent = ""; });
    // Any click or key press lets the page make sound from then on (the offer chime).
    const unlock = () => {
      if (!audioCtx || audioCtx.state !== "running") {
        unlockAudio();
        renderAll();
      }
    };
    document.addEventListener("pointerdown", unlock, true);
    document.addEventListener("keydown", unlock, true);
    // Leaving the page drops the call's audio cleanly rather than leaving the socket half-open.
    window.addEventListener("pagehide", () => stopAudio());
    setInterval(tick, TICK_MS);
  }

  const login = window.voicebotUI.loginForm(
    {
      form: ui.loginForm,
      username: ui.username,
      password: ui.password,
      error: ui.loginError,
      submit: ui.loginSubmit,
    },
    { beforeSubmit: unlockAudio, onSignedIn: startDesktop },
  );
  wireUp();
  boot();
})();
