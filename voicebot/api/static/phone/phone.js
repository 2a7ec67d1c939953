// The voicebot softphone: a browser phone line to the bot over one WebSocket (/phone/ws).
//
// Up:   binary = microphone as 16-bit LE mono PCM at 16 kHz, in 20 ms chunks;
//       text = JSON {"type":"dtmf","digits":"1"} and {"type":"hangup"}.
// Down: binary = the bot's voice in the same format, released by the server at real-time
//       pace; text = JSON events (ready, caller, bot, bot_state, caller_state, clear, timing,
//       keys, ended, error).
//
// Plain script, no build step and nothing fetched from elsewhere: the page has to work on an
// offline contact-centre network. `window.phoneState` mirrors the call for tests and scripts.
"use strict";

(() => {
  const PCM_RATE = 16000;
  const START_CUSHION_S = 0.08; // first bot chunk waits this long, so jitter doesn't gap it
  const MAX_UNSENT_BYTES = 256 * 1024; // ~8 s of audio: beyond that the link is stalled
  const TONE_S = 0.12;
  const KEYS = "0123456789*#";
  // The row and column frequencies (Hz) of each key, as on a real phone.
  const DTMF_HZ = {
    1: [697, 1209], 2: [697, 1336], 3: [697, 1477],
    4: [770, 1209], 5: [770, 1336], 6: [770, 1477],
    7: [852, 1209], 8: [852, 1336], 9: [852, 1477],
    "*": [941, 1209], 0: [941, 1336], "#": [941, 1477],
  };

  const ui = {
    botName: document.getElementById("bot-name"),
    status: document.getElementById("status"),
    caller: document.getElementById("caller"),
    call: document.getElementById("call"),
    meter: document.getElementById("meter-bar"),
    keys: document.getElementById("keys"),
    keypad: document.getElementById("keypad"),
    transcript: document.getElementById("transcript"),
    timing: document.getElementById("timing"),
  };

  // The test hook. Always the same object, updated in place, so a reference stays current.
  const phoneState = {
    connected: false,
    ended: false,
    endReason: null,
    handoff: null,
    callId: null,
    transcript: [], // final lines only: {role: "caller" | "bot", text}
    interim: "", // the caller's words still being recognised
    botAudioBytes: 0,
    botState: null,
    callerState: null,
    lastTotalMs: null,
    errors: [], // server error messages and local failures (microphone, connection)
    micError: null,
    queued: null, // after a handoff to a built-in queue: {entry_id, queue, waiting, estimated_wait}
    agent: null, // "connected" once an agent has taken the call
  };
  window.phoneState = phoneState;

  // The call in progress (null between calls): its socket and audio plumbing.
  let call = null;
  let interimItem = null; // the <li> showing interim caller text, kept last in the list

  // --- starting and ending a call ------------------------------------------------------

  function startCall() {
    if (call !== null) return;
    resetCallState();
    // Created inside the click handler: browsers only let a user gesture start audio.
    const audio = new AudioContext({ latencyHint: "interactive" });
    call = {
      audio,
      ws: null,
      playhead: 0, // context time at which the next bot chunk starts
      sources: new Set(), // bot audio scheduled and not yet finished
      oddByte: null, // a PCM sample split across two binary messages
      stream: null,
      micNodes: [],
    };
    audio.resume();
    setInCallControls(true);
    setStatus("Connecting…");
    call.ws = openSocket(call);
    startMicrophone(call);
  }

  function hangUp() {
    if (call === null) return;
    sendJson(call, { type: "hangup" });
    // Our side is done at once; close() still delivers the hangup queued before it.
    endCall("hangup", null, { immediately: true });
  }

  // Tears the call down. The bot's last words (a goodbye, a transfer announcement) are
  // still scheduled when the server says "ended", so unless the caller hung up, the audio
  // context stays open until they have played.
  function endCall(reason, handoff, { immediately = false } = {}) {
    if (call === null) return;
    const ending = call;
    call = null;
    phoneState.connected = false;
    phoneState.ended = true;
    phoneState.endReason = reason;
    phoneState.handoff = handoff;
    stopMicrophone(ending);
    if (ending.ws.readyState <= WebSocket.OPEN) ending.ws.close(1000, "caller hung up");
    if (immediately) stopBotAudio(ending);
    const remaining = immediately ? 0 : Math.max(0, ending.playhead - ending.audio.currentTime);
    setTimeout(() => ending.audio.close(), (remaining + 0.2) * 1000);
    clearInterim();
    showLevel(0);
    setInCallControls(false);
    setStatus(endedText(reason, handoff));
  }

  function endedText(reason, handoff) {
    if (handoff && handoff.queue) return `Transferred to ${handoff.queue}`;
    return `Call ended (${reason || "closed"})`;
  }

  function resetCallState() {
    Object.assign(phoneState, {
      connected: false, ended: false, endReason: null, handoff: null, callId: null,
      transcript: [], interim: "", botAudioBytes: 0, botState: null, callerState: null,
      lastTotalMs: null, errors: [], micError: null, queued: null, agent: null,
    });
    ui.transcript.replaceChildren();
    interimItem = null;
    ui.keys.textContent = "";
    ui.timing.textContent = "";
  }

  // --- the WebSocket -------------------------------------------------------------------

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(`${scheme}//${location.host}/phone/ws`);
    const caller = ui.caller.value.trim();
    if (caller !== "" && ui.caller.checkValidity()) url.searchParams.set("caller", caller);
    return url.toString();
  }

  function openSocket(forCall) {
    const ws = new WebSocket(socketUrl());
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      if (call !== forCall) return; // a late message from a call already ended
      if (typeof event.data === "string") handleEvent(event.data);
      else playBotAudio(forCall, event.data);
    };
    ws.onclose = () => {
      if (call !== forCall) return;
      // Closed without an "ended": the server went away, or never answered.
      if (!phoneState.connected) noteError("Could not connect to the bot.");
      endCall("closed", null);
    };
    return ws;
  }

  function sendJson(forCall, message) {
    if (forCall.ws && forCall.ws.readyState === WebSocket.OPEN) {
      forCall.ws.send(JSON.stringify(message));
    }
  }

  function sendAudio(forCall, pcm) {
    const ws = forCall.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    // Speech is only useful live: on a stalled link, drop audio rather than queue it up.
    if (ws.bufferedAmount > MAX_UNSENT_BYTES) return;
    ws.send(pcm);
  }

  function handleEvent(text) {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      return; // not ours to show; the server only sends JSON
    }
    switch (event.type) {
      case "ready": return onReady(event);
      case "caller": return showCallerText(event.text || "", event.final !== false);
      case "bot": return addLine("bot", event.text || "", { interrupted: !!event.interrupted });
      case "bot_state": phoneState.botState = event.state; return showCallStatus();
      case "caller_state": phoneState.callerState = event.state; return showCallStatus();
      case "clear": return stopBotAudio(call);
      case "timing": return showTiming(event);
      case "keys": ui.keys.textContent = event.digits || ""; return undefined;
      case "ended": return endCall(event.reason, event.handoff || null);
      case "queued": return onQueued(event);
      case "agent": phoneState.agent = event.state; return showCallStatus();
      case "error": return noteError(event.message || "error");
      default: return undefined; // newer server events are ignored, not fatal
    }
  }

  function onReady(event) {
    phoneState.connected = true;
    phoneState.callId = event.call_id || null;
    if (event.bot) {
      ui.botName.textContent = event.bot;
      document.title = `${event.bot} — softphone`;
    }
    setKeypadEnabled(true);
    showCallStatus();
  }

  // --- the bot's voice -----------------------------------------------------------------

  // Plays one binary message: chunks are scheduled back to back on the context clock, so
  // they join without gaps however unevenly the network delivers them.
  function playBotAudio(forCall, data) {
    phoneState.botAudioBytes += data.byteLength;
    const samples = window.VoicebotPcm.toFloatSamples(forCall, data);
    if (samples.length === 0) return;
    const audio = forCall.audio;
    const buffer = audio.createBuffer(1, samples.length, PCM_RATE); // resampled by the context
    buffer.copyToChannel(samples, 0);
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.destination);
    // Starting afresh (or after running dry): leave a cushion for the next chunk to arrive.
    if (forCall.playhead < audio.currentTime + 0.005) {
      forCall.playhead = audio.currentTime + START_CUSHION_S;
    }
    source.start(forCall.playhead);
    forCall.playhead += buffer.duration;
    forCall.sources.add(source);
    source.onended = () => forCall.sources.delete(source);
  }


  // The caller barged in: whatever the bot had still to say must stop now, not in a second.
  function stopBotAudio(forCall) {
    if (!forCall) return;
    for (const source of forCall.sources) {
      try {
        source.stop();
      } catch {
        // not started yet on some browsers; it is discarded with the set anyway
      }
    }
    forCall.sources.clear();
    forCall.playhead = 0;
    forCall.oddByte = null;
  }

  // --- the microphone ------------------------------------------------------------------

  async function startMicrophone(forCall) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
      });
      if (call !== forCall) { // hung up while the permission prompt was open
        stream.getTracks().forEach((track) => track.stop());
        return;
      }
      forCall.stream = stream;
      const audio = forCall.audio;
      await audio.audioWorklet.addModule("/phone/static/capture-worklet.js");
      if (call !== forCall) return stopMicrophone(forCall);
      const source = audio.createMediaStreamSource(stream);
      const capture = new AudioWorkletNode(audio, "capture-processor", {
        numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
      });
      // A silent path to the speakers: the graph only runs nodes that lead to the output.
      const mute = audio.createGain();
      mute.gain.value = 0;
      source.connect(capture).connect(mute).connect(audio.destination);
      capture.port.onmessage = (event) => {
        if (call !== forCall) return; // a chunk still in flight as the call ended
        sendAudio(forCall, event.data.pcm);
        showLevel(event.data.level);
      };
      forCall.micNodes = [source, capture, mute];
    } catch (error) {
      // No microphone (denied, absent, insecure page): the keypad still works.
      phoneState.micError = String(error && error.message ? error.message : error);
      noteError(`Microphone unavailable (${phoneState.micError}); you can still use the keypad.`);
    }
  }

  function stopMicrophone(forCall) {
    for (const node of forCall.micNodes) node.disconnect();
    forCall.micNodes = [];
    if (forCall.stream) forCall.stream.getTracks().forEach((track) => track.stop());
    forCall.stream = null;
  }

  // --- the keypad ----------------------------------------------------------------------

  function pressKey(key) {
    if (call === null || !phoneState.connected || !KEYS.includes(key)) return;
    sendJson(call, { type: "dtmf", digits: key });
    playTone(call.audio, key);
    flashKey(key);
  }

  // A short local beep so a press is heard, like a handset. The server never hears it.
  function playTone(audio, key) {
    const now = audio.currentTime;
    const gain = audio.createGain();
    gain.gain.setValueAtTime(0, now);
    gain.gain.linearRampToValueAtTime(0.08, now + 0.005);
    gain.gain.setValueAtTime(0.08, now + TONE_S - 0.01);
    gain.gain.linearRampToValueAtTime(0, now + TONE_S);
    gain.connect(audio.destination);
    for (const hz of DTMF_HZ[key]) {
      const osc = audio.createOscillator();
      osc.frequency.value = hz;
      osc.connect(gain);
      osc.start(now);
      osc.stop(now + TONE_S);
    }
  }

  function flashKey(key) {
    const button = ui.keypad.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!button) return;
    button.classList.add("pressed");
    setTimeout(() => button.classList.remove("pressed"), 150);
  }

  // --- the page ------------------------------------------------------------------------

  function setStatus(text) {
    ui.status.textContent = text;
  }

  // Handed to a built-in queue: the line stays open, with hold music, until an agent answers.
  function onQueued(event) {
    phoneState.queued = {
      entry_id: event.entry_id, queue: event.queue, waiting: event.waiting,
      estimated_wait: event.estimated_wait,
    };
    setKeypadEnabled(false);
    showCallStatus();
  }

  function showCallStatus() {
    if (call === null || !phoneState.connected) return;
    if (phoneState.agent === "connected") return setStatus("In call — with an agent");
    if (phoneState.queued) {
      const wait = phoneState.queued.estimated_wait;
      const minutes = typeof wait === "number" ? Math.max(1, Math.round(wait / 60)) : null;
      const estimate = minutes === null ? "" : ` — about ${minutes} min`;
      return setStatus(`Waiting for an agent (${phoneState.queued.queue})${estimate}`);
    }
    if (phoneState.callerState === "speaking") return setStatus("In call — you are speaking");
    const states = { speaking: "bot speaking", thinking: "bot thinking" };
    setStatus(`In call — ${states[phoneState.botState] || "bot listening"}`);
  }

  function setInCallControls(inCall) {
    ui.call.textContent = inCall ? "Hang up" : "Call";
    ui.call.setAttribute("aria-label", inCall ? "Hang up" : "Call the bot");
    ui.call.classList.toggle("hangup", inCall);
    ui.caller.disabled = inCall;
    if (!inCall) setKeypadEnabled(false);
  }

  function setKeypadEnabled(enabled) {
    for (const button of ui.keypad.querySelectorAll("button")) button.disabled = !enabled;
  }

  function addLine(role, text, { interrupted = false } = {}) {
    if (text === "") return;
    phoneState.transcript.push({ role, text });
    const item = document.createElement("li");
    item.className = role;
    if (interrupted) item.classList.add("interrupted");
    item.textContent = text;
    // The caller's unfinished words stay at the bottom: they are what is happening now.
    ui.transcript.insertBefore(item, interimItem);
    item.scrollIntoView({ block: "nearest" });
  }

  // Interim recognition replaces itself line by line; the final text becomes a real line.
  function showCallerText(text, final) {
    if (final) {
      clearInterim();
      addLine("caller", text);
      return;
    }
    phoneState.interim = text;
    if (text === "") return clearInterim();
    if (interimItem === null) {
      interimItem = document.createElement("li");
      interimItem.className = "caller interim";
      interimItem.setAttribute("aria-live", "off"); // read out once final, not word by word
      ui.transcript.appendChild(interimItem);
    }
    interimItem.textContent = text;
    interimItem.scrollIntoView({ block: "nearest" });
  }

  function clearInterim() {
    phoneState.interim = "";
    if (interimItem !== null) interimItem.remove();
    interimItem = null;
  }

  function noteError(message) {
    phoneState.errors.push(message);
    const item = document.createElement("li");
    item.className = "system";
    item.setAttribute("role", "alert");
    item.textContent = message;
    ui.transcript.insertBefore(item, interimItem);
  }

  function showTiming(event) {
    if (typeof event.total_ms !== "number") return;
    phoneState.lastTotalMs = event.total_ms;
    ui.timing.textContent = `${Math.round(event.total_ms)} ms`;
  }

  function showLevel(level) {
    // Square root: speech peaks are mostly small, and a linear bar would barely move.
    const percent = Math.min(100, Math.round(Math.sqrt(level) * 100));
    ui.meter.style.width = `${percent}%`;
    ui.meter.setAttribute("aria-valuenow", String(percent));
  }

  function onKeyDown(event) {
    // Typing a number into the caller box is not a keypad press.
    if (event.target instanceof HTMLInputElement || event.repeat) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (KEYS.includes(event.key) && event.key.length === 1 && call !== null) {
      event.preventDefault();
      pressKey(event.key);
    }
  }

  function wireUp() {
    ui.call.addEventListener("click", () => (call === null ? startCall() : hangUp()));
    ui.keypad.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-key]");
      if (button) pressKey(button.dataset.key);
    });
    document.addEventListener("keydown", onKeyDown);
    // Closing the tab mid-call hangs up properly instead of leaving the bot talking.
    window.addEventListener("pagehide", hangUp);
    setKeypadEnabled(false);
  }

  wireUp();
})();
