// The voicebot supervisor page: the live wallboard, bot performance, historical reports, the
// forecast and the calls with their quality reviews. Supervisors and admins only: the API
// answers an agent 403, and the page then says so.
//
// Live: one WebSocket at /api/supervisor/ws (docs/supervisor.md): the server pushes the whole
//   wallboard ({"type": "wallboard", ...}) within moments of any queue or agent change, and
//   every 5 s; the page pings ({"type": "ping"}), and ticks the clocks (longest wait, time in
//   state) itself between pushes. Close 4401 = session expired, 4403 = not a supervisor; any
//   other close is retried with backoff (common/session.js).
// REST, same-origin with the session cookie: GET /api/supervisor/wallboard (the first view),
//   /api/reports/bot, /api/reports/calls, /api/reports/intervals (format=csv for the
//   download), /api/forecast, /api/calls, /api/calls/{id}.
//
// Plain script, no build step and nothing fetched from elsewhere: the charts are the vendored
// uPlot (../common/vendor/). Every piece of data (queue names, questions, transcripts) goes
// into the page as text, never as markup. `window.supervisor` mirrors the state for tests.
"use strict";

(() => {
  const U = window.voicebotUI;
  const { el, num, fmtDuration, fmtClock, humanize, display, parseTime } = U;

  const WS_PATH = "/api/supervisor/ws";
  const TICK_MS = 1000;
  const VIEWS = ["wallboard", "bot", "reports", "forecast", "calls"];
  const LEVEL_WORDS = { ok: "OK", warn: "Warning", alert: "Alert" };
  const STATE_LABELS = {
    available: "Available",
    offered: "Offer",
    busy: "On a call",
    on_call: "On a call",
    wrap_up: "Wrap-up",
    away: "Away",
  };
  const ROLE_LABELS = { caller: "Caller", bot: "Bot", keypad: "Keypad", event: "Event" };
  const CHART_COLOURS = ["#1f7a4d", "#1d4ed8", "#b42318", "#a15c07", "#6d28d9"];

  const $ = (id) => document.getElementById(id);
  const ui = {
    loading: $("loading"),
    loginView: $("login-view"),
    forbiddenView: $("forbidden-view"),
    forbiddenText: $("forbidden-text"),
    main: $("main"),
    userBar: $("user-bar"),
    userName: $("user-name"),
    userRole: $("user-role"),
    live: $("live"),
    liveLabel: $("live-label"),
    tiles: $("tiles"),
    wallUpdated: $("wall-updated"),
    botToday: $("bot-today"),
    agents: $("agents"),
    tabs: Array.from(document.querySelectorAll(".tab")),
    botForm: $("bot-form"),
    botResult: $("bot-result"),
    botFigures: $("bot-figures"),
    botChart: $("bot-chart"),
    botReasons: $("bot-reasons"),
    botIntents: $("bot-intents"),
    botUnanswered: $("bot-unanswered"),
    botFlows: $("bot-flows"),
    reportForm: $("report-form"),
    reportResult: $("report-result"),
    reportChart: $("report-chart"),
    reportChartTitle: $("report-chart-title"),
    reportTable: $("report-table"),
    reportCsv: $("report-csv"),
    forecastForm: $("forecast-form"),
    forecastResult: $("forecast-result"),
    forecastError: $("forecast-error"),
    forecastQueues: $("forecast-queues"),
    callsForm: $("calls-form"),
    callsResult: $("calls-result"),
    callsTotal: $("calls-total"),
    callsList: $("calls-list"),
    callView: $("call-view"),
    callTitle: $("call-title"),
    callFacts: $("call-facts"),
    callSummary: $("call-summary"),
    callScore: $("call-score"),
    callRecordingsBox: $("call-recordings-box"),
    callRecordings: $("call-recordings"),
    callTranscript: $("call-transcript"),
    callEvents: $("call-events"),
  };

  // The test hook. Always the same object, updated in place, so a reference stays current.
  const supervisor = {
    user: null,
    connected: false, // a wallboard has arrived on the current socket
    forbidden: false, // signed in, but not a supervisor
    view: "wallboard",
    wallboard: null, // the last wallboard message
    updates: 0, // wallboards received (REST and socket)
    receivedAt: 0, // when the last one arrived, local-clock ms
    bot: null, // the last bot report shown
    report: null, // the last calls or interval report shown
    forecast: null,
    calls: null, // the call list shown
    call: null, // the call open in the call view
    loading: {}, // view -> true while its request is out
    charts: {}, // chart name -> {series, points}: what the charts were drawn from
    errors: [],
  };
  window.supervisor = supervisor;

  const banner = U.banner({
    box: $("banner"), text: $("banner-text"), action: $("banner-action"), close: $("banner-close"),
  });
  const charts = {}; // name -> uPlot instance, destroyed before a redraw

  function noteError(message) {
    supervisor.errors.push(message);
    if (supervisor.errors.length > 50) supervisor.errors.shift();
  }

  // ======================================================================================
  // sign-in and who may see the page
  // ======================================================================================

  const socket = new U.ReconnectingSocket(WS_PATH, {
    closeReason: "closed by the supervisor page",
    onSocket: () => {
      supervisor.connected = false;
      renderLive();
    },
    onMessage: (message) => {
      if (message.type === "wallboard") {
        socket.resetBackoff();
        supervisor.connected = true;
        banner.clearPersistent();
        renderWallboard(message);
        renderLive();
      }
    },
    onSessionExpired: () => showLogin("Your session has expired"),
    onForbidden: () => showForbidden(supervisor.user),
    onRetrying: (retryNow) => {
      banner.setPersistent("Connection to the server lost — reconnecting…", "warn", {
        label: "Retry now",
        run: retryNow,
      });
    },
    onUser: (user) => showUser(user),
    onGone: () => renderLive(),
  });

  const login = U.loginForm(
    {
      form: $("login-form"),
      username: $("username"),
      password: $("password"),
      error: $("login-error"),
      submit: $("login-submit"),
    },
    { onSignedIn: (user) => start(user) },
  );

  async function boot() {
    const me = await U.whoAmI();
    if (me.user) start(me.user);
    else showLogin(me.message);
  }

  function hideAll() {
    ui.loading.hidden = true;
    ui.loginView.hidden = true;
    ui.forbiddenView.hidden = true;
    ui.main.hidden = true;
  }

  function showLogin(message, kind = "error") {
    socket.close();
    supervisor.user = null;
    supervisor.forbidden = false;
    banner.clearPersistent();
    banner.clearTransient();
    hideAll();
    ui.userBar.hidden = true;
    ui.loginView.hidden = false;
    login.setError(message || "", kind);
    document.title = "Sign in — voicebot supervisor";
    login.focus();
  }

  function showForbidden(user) {
    socket.close();
    supervisor.forbidden = true;
    banner.clearPersistent();
    hideAll();
    showUser(user);
    ui.liveLabel.parentElement.hidden = true;
    ui.forbiddenView.hidden = false;
    const who = user ? `${user.display_name || user.username} (${humanize(user.role || "agent")})` : "an agent";
    ui.forbiddenText.textContent = `You are signed in as ${who}. The wallboard and reports need a supervisor or admin account.`;
    document.title = "Supervisors only — voicebot supervisor";
  }

  // Signed in: the first wallboard by REST says whether this user may see the page (403).
  async function start(user) {
    supervisor.user = user;
    supervisor.forbidden = false;
    showUser(user);
    const first = await U.getJSON("/api/supervisor/wallboard");
    if (!first.ok && first.status === 401) return showLogin("Your session has expired");
    if (!first.ok && first.status === 403) return showForbidden(user);
    hideAll();
    ui.liveLabel.parentElement.hidden = false;
    ui.main.hidden = false;
    document.title = "Wallboard — voicebot supervisor";
    if (first.ok) renderWallboard(first.data);
    else {
      noteError(first.message);
      banner.showTransient(`Could not load the wallboard: ${first.message}`);
    }
    fillQueueChoices();
    showView(viewFromHash(), false);
    socket.connect();
    renderLive();
  }

  function showUser(user) {
    if (!user) return;
    supervisor.user = user;
    ui.userBar.hidden = false;
    ui.userName.textContent = user.display_name || user.username || "";
    ui.userRole.textContent = user.role ? humanize(user.role) : "";
  }

  async function signOut() {
    socket.close();
    await U.signOut();
    showLogin("You have signed out.", "info");
  }

  function renderLive() {
    const live = supervisor.connected;
    ui.live.dataset.live = String(live);
    ui.liveLabel.textContent = live ? "Live" : (socket.wanted ? "Connecting" : "Offline");
  }

  // A REST answer that is not data: 401 and 403 change the whole page; others are shown by
  // the view that asked.
  function refused(result) {
    if (result.status === 401) {
      showLogin("Your session has expired");
      return true;
    }
    if (result.status === 403) {
      showForbidden(supervisor.user);
      return true;
    }
    return false;
  }

  // ======================================================================================
  // the views (tabs)
  // ======================================================================================

  function viewFromHash() {
    const name = location.hash.replace(/^#/, "").split("/")[0];
    return VIEWS.includes(name) ? name : "wallboard";
  }

  function showView(name, focus = true) {
    supervisor.view = name;
    for (const tab of ui.tabs) {
      const selected = tab.dataset.view === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`view-${tab.dataset.view}`).hidden = !selected;
      if (selected && focus) tab.focus();
    }
    if (location.hash.replace(/^#/, "").split("/")[0] !== name) {
      history.replaceState(null, "", `#${name}`);
    }
    document.title = `${humanize(name === "bot" ? "bot performance" : name)} — voicebot supervisor`;
    // A view's first visit loads it with the default filters.
    const loaders = { bot: loadBot, reports: loadReport, forecast: loadForecast, calls: loadCalls };
    const shown = { bot: supervisor.bot, reports: supervisor.report, forecast: supervisor.forecast, calls: supervisor.calls };
    if (loaders[name] && shown[name] === null && !supervisor.loading[name]) loaders[name]();
    // Charts drawn while hidden had no width: draw them again at their real size.
    requestAnimationFrame(resizeCharts);
  }

  function tabKeys(event) {
    const index = ui.tabs.indexOf(event.target);
    if (index < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (index + 1) % ui.tabs.length;
    else if (event.key === "ArrowLeft") next = (index - 1 + ui.tabs.length) % ui.tabs.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = ui.tabs.length - 1;
    if (next === null) return;
    event.preventDefault();
    showView(ui.tabs[next].dataset.view);
  }

  // ======================================================================================
  // the wallboard
  // ======================================================================================

  function fmtSeconds(value) {
    const s = num(value);
    if (s === null) return "—";
    return s < 60 ? `${Math.round(s)} s` : fmtDuration(s * 1000);
  }

  function fmtPercent(value) {
    const n = num(value);
    return n === null ? "—" : `${Math.round(n)}%`;
  }

  function renderWallboard(board) {
    if (!board || typeof board !== "object") return;
    supervisor.wallboard = board;
    supervisor.updates += 1;
    supervisor.receivedAt = Date.now();
    const queues = Array.isArray(board.queues) ? board.queues.filter((q) => q && typeof q === "object") : [];
    if (queues.length === 0) {
      ui.tiles.replaceChildren(el("p", { cls: "empty", text: "No queues to show." }));
    } else {
      ui.tiles.replaceChildren(...queues.map(queueRow));
    }
    const bot = board.bot && typeof board.bot === "object" ? board.bot : null;
    ui.botToday.textContent = bot
      ? `Bot today: ${display(bot.calls)} calls, ${display(bot.contained)} contained (${fmtRate(bot.containment_rate)}).`
      : "";
    renderAgents(Array.isArray(board.agents) ? board.agents : []);
    const at = parseTime(board.at);
    ui.wallUpdated.textContent = Number.isFinite(at) ? `Updated ${fmtClock(at)}` : "";
    fillQueueChoices();
    tick();
  }

  function queueRow(q) {
    const name = String(q.name || "queue");
    const levels = q.tiles && typeof q.tiles === "object" ? q.tiles : {};
    const row = el("article", { cls: "card queue-row", attrs: { "data-queue": name, "aria-label": `${name} queue` } });
    row.appendChild(el("h3", { cls: "queue-title", text: name }));
    const tiles = el("div", { cls: "tiles" });
    const waiting = num(q.waiting) ?? 0;

    tiles.appendChild(tile("waiting", "Waiting", String(waiting), levels.waiting));
    const longest = num(q.longest_wait);
    const longestTile = tile("longest_wait", "Longest wait",
      longest === null || waiting === 0 ? "—" : fmtDuration(longest * 1000), levels.longest_wait);
    if (longest !== null && waiting > 0) {
      longestTile.querySelector(".tile-value").dataset.since = String(supervisor.receivedAt - longest * 1000);
    }
    tiles.appendChild(longestTile);
    const target = num(q.sl_target);
    const sla = num(q.sla_seconds);
    tiles.appendChild(tile("service_level", "Service level", fmtPercent(q.service_level), levels.service_level,
      target !== null ? `target ${target}%${sla !== null ? ` in ${sla} s` : ""}` : ""));
    tiles.appendChild(tile("asa", "ASA", fmtSeconds(q.asa), null, "average speed of answer"));
    tiles.appendChild(tile("abandon_rate", "Abandoned", fmtPercent(q.abandon_rate), levels.abandon_rate,
      num(q.abandoned) !== null ? `${q.abandoned} of ${num(q.offered) ?? 0} offered` : ""));

    const agents = q.agents && typeof q.agents === "object" ? q.agents : {};
    const counts = el("dl", { cls: "agent-counts" });
    for (const [key, label] of [["available", "Available"], ["on_call", "On call"], ["wrap_up", "Wrap-up"], ["away", "Away"]]) {
      counts.appendChild(el("div", { attrs: { "data-field": key } }, [
        el("dt", { text: label }),
        el("dd", { text: String(num(agents[key]) ?? 0) }),
      ]));
    }
    const agentsTile = el("div", { cls: "tile tile-agents", attrs: { "data-field": "agents", "data-level": "none" } }, [
      el("span", { cls: "tile-label", text: "Agents" }),
      counts,
    ]);
    tiles.appendChild(agentsTile);
    tiles.appendChild(tile("callbacks_owed", "Callbacks owed", String(num(q.callbacks_owed) ?? 0), null));
    row.appendChild(tiles);
    return row;
  }

  // A tile: its figure, and its level in words as well as colour (ok, warn, alert; none when
  // the queue has no threshold for it).
  function tile(field, label, value, level, note = "") {
    const known = Object.hasOwn(LEVEL_WORDS, level) ? level : "none";
    const node = el("div", { cls: "tile", attrs: { "data-field": field, "data-level": known } }, [
      el("span", { cls: "tile-label", text: label }),
      el("span", { cls: "tile-value", text: value }),
    ]);
    if (known !== "none") node.appendChild(el("span", { cls: "tile-level", text: LEVEL_WORDS[known] }));
    if (note) node.appendChild(el("span", { cls: "tile-note", text: note }));
    node.setAttribute("aria-label", `${label}: ${value}${known !== "none" ? `, ${LEVEL_WORDS[known]}` : ""}`);
    return node;
  }

  function renderAgents(agents) {
    const rows = agents.filter((a) => a && typeof a === "object");
    if (rows.length === 0) {
      ui.agents.replaceChildren(el("p", { cls: "empty", text: "No agents signed in." }));
      return;
    }
    const body = el("tbody", {}, rows.map((a) => {
      const state = String(a.state || "");
      const seconds = num(a.seconds_in_state);
      const timeCell = el("td", { cls: "num", text: seconds === null ? "—" : fmtDuration(seconds * 1000) });
      if (seconds !== null) timeCell.dataset.since = String(supervisor.receivedAt - seconds * 1000);
      const queues = Array.isArray(a.queues) ? a.queues.map(String).join(", ") : "";
      return el("tr", { attrs: { "data-agent": String(a.username || a.id || "") } }, [
        el("th", { text: a.name || a.username || "—", attrs: { scope: "row" } }),
        el("td", {}, [el("span", { cls: "agent-state", text: STATE_LABELS[state] || humanize(state), attrs: { "data-state": state } })]),
        timeCell,
        el("td", { text: queues || "—" }),
      ]);
    }));
    ui.agents.replaceChildren(table(["Agent", "State", "Time in state", "Queues"], body, "Agents and their states"));
  }

  function tick() {
    const now = Date.now();
    for (const node of ui.main.querySelectorAll("#view-wallboard [data-since]")) {
      node.textContent = fmtDuration(now - Number(node.dataset.since));
    }
  }

  // ======================================================================================
  // tables and charts
  // ======================================================================================

  function table(headings, body, caption, numeric = []) {
    return el("table", { cls: "data" }, [
      el("caption", { cls: "visually-hidden", text: caption }),
      el("thead", {}, [el("tr", {}, headings.map((h, i) => el("th", {
        cls: numeric.includes(i) ? "num" : null, text: h, attrs: { scope: "col" },
      })))]),
      body,
    ]);
  }

  // A table of rows (objects) in the given columns ([key, heading, format]).
  function dataTable(rows, columns, caption) {
    const numeric = columns.map((c, i) => (c[2] ? i : -1)).filter((i) => i >= 0);
    const body = el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([key, , format], i) => {
      const value = row ? row[key] : null;
      const text = format ? format(value) : display(value);
      return i === 0 ? el("th", { text, attrs: { scope: "row" } }) : el("td", { cls: format ? "num" : null, text });
    }))));
    if (rows.length === 0) return el("p", { cls: "empty", text: "Nothing in this period." });
    return table(columns.map((c) => c[1]), body, caption, numeric);
  }

  const count = (v) => (num(v) === null ? "—" : String(v));
  // Rates: the API gives percentages (0-100), always. A rate under 1 is a small percentage
  // (0.9% abandoned), not a fraction to scale up.
  function fmtRate(v) {
    const n = num(v);
    if (n === null) return "—";
    return `${n.toFixed(1)}%`;
  }
  const fmtSecs = (v) => fmtSeconds(v);

  function destroyChart(name) {
    if (charts[name]) charts[name].destroy();
    delete charts[name];
  }

  // A chart with uPlot: x is times (ms since the epoch) or labels; each series {label, values,
  // scale ("y" or "r": a right-hand axis), bars}. What it shows is also in supervisor.charts.
  function drawChart(name, box, { x, labels = null, series, yLabel = "", rLabel = "" }) {
    destroyChart(name);
    box.replaceChildren();
    supervisor.charts[name] = { points: x.length, series: series.map((s) => s.label) };
    if (x.length === 0 || typeof window.uPlot !== "function") {
      box.appendChild(el("p", { cls: "empty", text: x.length === 0 ? "Nothing to chart." : "The chart library did not load." }));
      return;
    }
    const time = labels === null;
    const xs = time ? x.map((t) => t / 1000) : x.map((_, i) => i);
    const bars = window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.6, 60] }) : null;
    const axes = [
      time ? {} : { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) && labels[t] !== undefined ? labels[t] : "")) },
      { label: yLabel, size: 60 },
    ];
    const scales = { x: time ? { time: true } : { time: false, range: [-0.5, Math.max(0.5, x.length - 0.5)] } };
    if (series.some((s) => s.scale === "r")) {
      axes.push({ scale: "r", side: 1, grid: { show: false }, label: rLabel, size: 60 });
      scales.r = { auto: true };
    }
    const options = {
      width: Math.max(320, box.clientWidth || 640),
      height: 260,
      scales,
      axes,
      legend: { show: true },
      series: [
        { label: time ? "Time" : "Item", value: (_u, v) => (v === null ? "—" : time ? new Date(v * 1000).toLocaleString() : labels[v]) },
        ...series.map((s, i) => ({
          label: s.label,
          scale: s.scale || "y",
          stroke: CHART_COLOURS[i % CHART_COLOURS.length],
          fill: s.bars ? `${CHART_COLOURS[i % CHART_COLOURS.length]}55` : undefined,
          width: 2,
          paths: s.bars && bars ? bars : undefined,
          points: { show: x.length < 60 },
        })),
      ],
    };
    const data = [xs, ...series.map((s) => s.values.map((v) => num(v)))];
    charts[name] = new window.uPlot(options, data, box);
    charts[name].__box = box;
  }

  function resizeCharts() {
    for (const chart of Object.values(charts)) {
      const width = chart.__box.clientWidth;
      if (width > 0 && Math.abs(width - chart.width) > 2) chart.setSize({ width, height: chart.height });
    }
  }

  // ======================================================================================
  // filters
  // ======================================================================================

  function isoDate(date) {
    return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
  }

  function defaultDates(form, days) {
    const to = new Date();
    const from = new Date(to.getTime() - (days - 1) * 86400000);
    if (form.elements.from && !form.elements.from.value) form.elements.from.value = isoDate(from);
    if (form.elements.to && !form.elements.to.value) form.elements.to.value = isoDate(to);
  }

  // The queues the wallboard knows, in every form's queue list (keeping what is chosen).
  function fillQueueChoices() {
    const board = supervisor.wallboard;
    const names = board && Array.isArray(board.queues) ? board.queues.map((q) => String(q && q.name)).filter(Boolean) : [];
    for (const select of document.querySelectorAll(".queue-select")) {
      const have = Array.from(select.options).map((o) => o.value);
      for (const name of names) if (!have.includes(name)) select.appendChild(el("option", { text: name, attrs: { value: name } }));
    }
  }

  function formParams(form, names) {
    const params = new URLSearchParams();
    for (const name of names) {
      const field = form.elements[name];
      const value = field ? String(field.value).trim() : "";
      if (value !== "") params.append(name, value);
    }
    return params;
  }

  function formError(form, text) {
    form.querySelector("[data-role=error]").textContent = text;
  }

  // A view's request: the form's submit button says so meanwhile; errors go under the form.
  async function load(view, form, url) {
    supervisor.loading[view] = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    formError(form, "");
    try {
      const result = await U.getJSON(url);
      if (!result.ok) {
        if (refused(result)) return null;
        formError(form, result.message);
        noteError(result.message);
        return null;
      }
      return result.data;
    } finally {
      supervisor.loading[view] = false;
      button.disabled = false;
    }
  }

  function checkDates(form) {
    const from = form.elements.from.value;
    const to = form.elements.to.value;
    if (from && to && from > to) {
      formError(form, "The start date is after the end date.");
      return false;
    }
    return true;
  }

  // ======================================================================================
  // bot performance
  // ======================================================================================

  async function loadBot() {
    const form = ui.botForm;
    defaultDates(form, 7);
    if (!checkDates(form)) return;
    const data = await load("bot", form, `/api/reports/bot?${formParams(form, ["from", "to", "queue", "channel"])}`);
    if (data) renderBot(data);
  }

  function figure(label, value, field, note = "") {
    return el("div", { cls: "figure card", attrs: { "data-field": field } }, [
      el("span", { cls: "figure-label", text: label }),
      el("span", { cls: "figure-value", text: value }),
      note ? el("span", { cls: "figure-note", text: note }) : null,
    ]);
  }

  function renderBot(data) {
    supervisor.bot = data;
    ui.botResult.hidden = false;
    const latency = data.latency_ms && typeof data.latency_ms === "object" ? data.latency_ms : {};
    const ms = (v) => (num(v) === null ? "—" : `${Math.round(v)} ms`);
    const sentiment = num(data.sentiment);
    ui.botFigures.replaceChildren(
      figure("Calls", count(data.calls), "calls"),
      figure("Contained", fmtRate(data.containment_rate), "containment_rate", `${count(data.contained)} calls`),
      figure("Handed to agents", fmtRate(data.handoff_rate), "handoff_rate", `${count(data.handoffs)} calls`),
      figure("Sentiment", sentiment === null ? "—" : `${sentiment > 0 ? "+" : ""}${sentiment.toFixed(2)}`, "sentiment", "-1 to +1"),
      figure("Latency p50", ms(latency.p50), "latency_p50", `${count(latency.turns)} turns`),
      figure("Latency p95", ms(latency.p95), "latency_p95"),
    );
    const list = (v) => (Array.isArray(v) ? v.filter((r) => r && typeof r === "object") : []);
    ui.botReasons.replaceChildren(dataTable(
      list(data.handoff_reasons).map((r) => ({ ...r, reason: humanize(r.reason) })),
      [["reason", "Reason"], ["calls", "Calls", count], ["share", "Share", fmtRate]], "Handoff reasons",
    ));
    ui.botIntents.replaceChildren(dataTable(list(data.top_intents), [["intent", "Intent"], ["calls", "Calls", count]], "Top intents"));
    ui.botUnanswered.replaceChildren(dataTable(list(data.unanswered), [["question", "Question"], ["count", "Times", count]], "Questions the bot could not answer"));
    ui.botFlows.replaceChildren(dataTable(list(data.flows), [
      ["flow", "Flow"], ["started", "Started", count], ["completed", "Completed", count],
      ["handoff", "Handed off", count], ["abandoned", "Abandoned", count],
    ], "Flows"));
    const days = list(data.by_day);
    const rate = days.map((d) => num(d.containment_rate));
    drawChart("bot", ui.botChart, {
      x: days.map((d) => parseDay(d.day)),
      series: [
        { label: "Containment %", values: rate },
        { label: "Calls", values: days.map((d) => d.calls), scale: "r", bars: true },
      ],
      yLabel: "%",
      rLabel: "calls",
    });
  }

  // A local date ("2026-11-01") at local midnight.
  function parseDay(text) {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(text || ""));
    if (!match) return parseTime(String(text || ""));
    return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3])).getTime();
  }

  // A local ISO time without an offset ("2026-11-01T09:00") is local; with one, as given.
  function parseLocal(text) {
    const s = String(text || "");
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) return parseDay(s);
    return Date.parse(s);
  }

  // ======================================================================================
  // reports
  // ======================================================================================

  const CALL_COLUMNS = {
    day: [["day", "Day"]],
    hour: [["hour", "Hour"]],
    queue: [["queue", "Queue"]],
  };
  const TRAFFIC = [
    ["calls", "Calls", count], ["contained", "Contained", count], ["offered", "Offered", count],
    ["answered", "Answered", count], ["abandoned", "Abandoned", count],
    ["service_level", "Service level", fmtRate], ["asa", "ASA", fmtSecs], ["aht", "AHT", fmtSecs],
    ["abandon_rate", "Abandon rate", fmtRate],
  ];
  const INTERVAL = [
    ["interval", "Interval"], ["offered", "Offered", count], ["answered", "Answered", count],
    ["abandoned", "Abandoned", count], ["service_level", "Service level", fmtRate],
    ["asa", "ASA", fmtSecs], ["aht", "AHT", fmtSecs],
  ];
  const BY_INTENT = [
    ["intent", "Intent"], ["calls", "Calls", count], ["contained", "Contained", count],
    ["handoffs", "Handoffs", count], ["containment_rate", "Containment", fmtRate],
  ];
  const BY_AGENT = [
    ["agent", "Agent"], ["answered", "Answered", count], ["aht", "AHT", fmtSecs],
    ["talk", "Talk", fmtSecs], ["wrap", "Wrap-up", fmtSecs],
  ];

  function reportUrl(form, format) {
    const [kind, arg] = form.elements.report.value.split(":");
    const params = formParams(form, ["from", "to", "queue"]);
    if (kind === "calls") params.set("by", arg);
    else params.set("interval", arg);
    if (format) params.set("format", format);
    return { kind, arg, url: `/api/reports/${kind}?${params}` };
  }

  async function loadReport() {
    const form = ui.reportForm;
    defaultDates(form, 7);
    if (!checkDates(form)) return;
    const { kind, arg, url } = reportUrl(form, null);
    ui.reportCsv.href = reportUrl(form, "csv").url;
    ui.reportCsv.hidden = false;
    const data = await load("reports", form, url);
    if (data) renderReport(data, kind, arg);
  }

  function renderReport(data, kind, arg) {
    supervisor.report = data;
    ui.reportResult.hidden = false;
    const rows = Array.isArray(data.rows) ? data.rows.filter((r) => r && typeof r === "object") : [];
    let columns;
    if (kind === "intervals") columns = INTERVAL;
    else if (arg === "intent") columns = BY_INTENT;
    else if (arg === "agent") columns = BY_AGENT;
    else columns = [...CALL_COLUMNS[arg], ...TRAFFIC];
    const shown = columns.filter(([key], i) => i === 0 || rows.some((r) => Object.hasOwn(r, key)));
    const withTotals = data.totals && typeof data.totals === "object"
      ? [...rows, { ...data.totals, [columns[0][0]]: "Total" }] : rows;
    ui.reportTable.replaceChildren(dataTable(withTotals, shown, "Report"));

    const key = columns[0][0];
    const timeLike = key === "day" || key === "interval" || (key === "hour" && rows.every((r) => Number.isFinite(parseLocal(r.hour))));
    const x = timeLike ? rows.map((r) => parseLocal(r[key])) : rows.map((_, i) => i);
    const labels = timeLike ? null : rows.map((r) => String(r[key] ?? ""));
    let series;
    if (kind === "intervals" || key === "day" || key === "hour" || key === "queue") {
      series = [
        { label: "Offered", values: rows.map((r) => r.offered), bars: !timeLike },
        { label: "Answered", values: rows.map((r) => r.answered), bars: !timeLike },
        { label: "Service level %", values: rows.map((r) => r.service_level), scale: "r" },
      ];
    } else if (key === "intent") {
      series = [{ label: "Calls", values: rows.map((r) => r.calls), bars: true }];
    } else {
      series = [{ label: "Answered", values: rows.map((r) => r.answered), bars: true }];
    }
    ui.reportChartTitle.textContent = `${ui.reportForm.elements.report.selectedOptions[0].textContent}`;
    ui.reportChart.setAttribute("aria-label", `Chart of ${ui.reportChartTitle.textContent.toLowerCase()}`);
    drawChart("report", ui.reportChart, { x, labels, series, yLabel: "calls", rLabel: "%" });
  }

  // ======================================================================================
  // forecast
  // ======================================================================================

  async function loadForecast() {
    const form = ui.forecastForm;
    const days = Number(form.elements.days.value);
    if (!Number.isInteger(days) || days < 1 || days > 60) {
      formError(form, "Days must be a whole number from 1 to 60.");
      return;
    }
    const data = await load("forecast", form, `/api/forecast?${formParams(form, ["days", "interval", "queue"])}`);
    if (data) renderForecast(data);
  }

  function renderForecast(data) {
    supervisor.forecast = data;
    ui.forecastResult.hidden = false;
    const error = data.error && typeof data.error === "object" ? data.error : null;
    const parts = [];
    if (error) {
      if (num(error.wape) !== null) parts.push(`WAPE ${fmtRate(error.wape)}`);
      if (num(error.mape) !== null) parts.push(`MAPE ${fmtRate(error.mape)}`);
      if (num(error.held_back_days) !== null) parts.push(`measured on ${error.held_back_days} held-back days`);
    }
    if (num(data.history_days) !== null) parts.push(`from ${data.history_days} days of history`);
    ui.forecastError.textContent = parts.length > 0
      ? `Forecast error: ${parts.join(", ")}.` : "No held-back history to measure the error on yet.";
    const queues = Array.isArray(data.queues) ? data.queues.filter((q) => q && typeof q === "object") : [];
    for (const name of Object.keys(charts)) if (name.startsWith("forecast:")) destroyChart(name);
    if (queues.length === 0) {
      ui.forecastQueues.replaceChildren(el("p", { cls: "empty", text: "No queues to forecast." }));
      return;
    }
    ui.forecastQueues.replaceChildren();
    for (const q of queues) {
      const name = String(q.name || "queue");
      const intervals = Array.isArray(q.intervals) ? q.intervals.filter((i) => i && typeof i === "object") : [];
      const box = el("div", { cls: "chart", attrs: { role: "img", "aria-label": `Forecast calls and agents needed for ${name}` } });
      const facts = [
        num(q.aht) !== null ? `AHT ${fmtSeconds(q.aht)}` : null,
        num(q.service_level) !== null ? `target ${q.service_level}% in ${display(q.sla_seconds)} s` : null,
      ].filter(Boolean).join(" · ");
      const peak = intervals.reduce((m, i) => Math.max(m, num(i.agents) ?? 0), 0);
      const total = intervals.reduce((s, i) => s + (num(i.calls) ?? 0), 0);
      const section = el("section", { cls: "card panel", attrs: { "data-queue": name, "aria-label": `${name} forecast` } }, [
        el("h3", { text: name }),
        el("p", { cls: "hint", text: `${Math.round(total)} calls forecast, at most ${peak} agents needed${facts ? ` · ${facts}` : ""}` }),
        box,
      ]);
      ui.forecastQueues.appendChild(section);
      drawChart(`forecast:${name}`, box, {
        x: intervals.map((i) => parseLocal(i.start)),
        series: [
          { label: "Calls (forecast)", values: intervals.map((i) => i.calls) },
          { label: "Agents needed", values: intervals.map((i) => i.agents), scale: "r" },
        ],
        yLabel: "calls",
        rLabel: "agents",
      });
    }
  }

  // ======================================================================================
  // calls and the call view
  // ======================================================================================

  async function loadCalls() {
    const form = ui.callsForm;
    if (!checkDates(form)) return;
    const min = form.elements.min_score.value;
    const max = form.elements.max_score.value;
    if (min !== "" && max !== "" && Number(min) > Number(max)) {
      formError(form, "The lowest score is above the highest.");
      return;
    }
    const params = formParams(form, ["from", "to", "min_score", "max_score", "failed"]);
    params.set("limit", "100");
    const data = await load("calls", form, `/api/calls?${params}`);
    if (data) renderCalls(data);
  }

  function renderCalls(data) {
    supervisor.calls = data;
    ui.callsResult.hidden = false;
    const calls = Array.isArray(data.calls) ? data.calls.filter((c) => c && typeof c === "object") : [];
    const total = num(data.total) ?? calls.length;
    ui.callsTotal.textContent = `${total} call${total === 1 ? "" : "s"}${total > calls.length ? `, the first ${calls.length} shown` : ""}.`;
    if (calls.length === 0) {
      ui.callsList.replaceChildren(el("p", { cls: "empty", text: "No calls match." }));
      return;
    }
    const body = el("tbody", {}, calls.map((c) => {
      const started = parseTime(c.started_at);
      const open = el("button", { cls: "btn btn-small btn-secondary", text: "Open", attrs: { type: "button", "aria-label": `Open call ${c.id}` } });
      open.addEventListener("click", () => openCall(String(c.id)));
      const score = num(c.score);
      const scoreCell = el("td", { cls: "num" });
      if (score === null) scoreCell.textContent = "—";
      else scoreCell.appendChild(el("span", { cls: "score", text: String(Math.round(score)), attrs: { "data-passed": String(!!c.passed) } }));
      return el("tr", { attrs: { "data-call": String(c.id) } }, [
        el("th", { text: Number.isFinite(started) ? new Date(started).toLocaleString() : "—", attrs: { scope: "row" } }),
        el("td", { text: humanize(c.channel) || "—" }),
        el("td", { text: c.caller || "—" }),
        el("td", { text: c.intent || "—" }),
        el("td", { text: humanize(c.outcome) || "—" }),
        el("td", { text: c.queue || "—" }),
        scoreCell,
        el("td", { cls: "num", text: count(c.failures) }),
        el("td", {}, [open]),
      ]);
    }));
    ui.callsList.replaceChildren(table(
      ["Started", "Channel", "Caller", "Intent", "Outcome", "Queue", "Score", "Failures", ""], body, "Calls", [6, 7],
    ));
  }

  async function openCall(id) {
    const result = await U.getJSON(`/api/calls/${encodeURIComponent(id)}`);
    if (!result.ok) {
      if (refused(result)) return;
      noteError(result.message);
      banner.showTransient(`Could not open the call: ${result.message}`);
      return;
    }
    renderCall(result.data);
    history.replaceState(null, "", `#calls/${encodeURIComponent(id)}`);
    ui.callView.focus();
  }

  function renderCall(data) {
    supervisor.call = data;
    const call = data.call && typeof data.call === "object" ? data.call : {};
    ui.callView.hidden = false;
    ui.callTitle.textContent = `Call ${call.id || ""}`.trim();
    const started = parseTime(call.started_at);
    const ended = parseTime(call.ended_at);
    const facts = [
      ["Started", Number.isFinite(started) ? new Date(started).toLocaleString() : "—"],
      ["Duration", Number.isFinite(started) && Number.isFinite(ended) ? fmtDuration(ended - started) : "—"],
      ["Channel", humanize(call.channel) || "—"],
      ["Caller", call.caller || call.caller_number || "—"],
      ["Intent", call.intent || "—"],
      ["Outcome", humanize(call.outcome) || "—"],
      ["Sentiment", num(call.sentiment) === null ? "—" : call.sentiment.toFixed(2)],
      ["Language", call.language || "—"],
    ];
    ui.callFacts.replaceChildren(...facts.map(([k, v]) => el("div", {}, [el("dt", { text: k }), el("dd", { text: v })])));

    const review = data.review && typeof data.review === "object" ? data.review : null;
    const handoffs = Array.isArray(data.handoffs) ? data.handoffs.filter((h) => h && typeof h === "object") : [];
    const summary = (review && review.summary) || (handoffs[0] && handoffs[0].summary) || "";
    ui.callSummary.textContent = summary || "No summary.";

    // Transcript lines a failed check points at are marked, and named in the line.
    const failedLines = new Map(); // seq -> [rule]
    const failures = review && Array.isArray(review.failures) ? review.failures.filter((f) => f && typeof f === "object") : [];
    for (const failure of failures) {
      for (const seq of Array.isArray(failure.lines) ? failure.lines : []) {
        if (!failedLines.has(seq)) failedLines.set(seq, []);
        failedLines.get(seq).push(String(failure.rule || "rule"));
      }
    }
    if (!review) {
      ui.callScore.replaceChildren(el("p", { cls: "empty", text: "Not reviewed yet." }));
    } else {
      const head = el("p", { cls: "score-line" }, [
        el("span", { cls: "score big", text: String(Math.round(num(review.score) ?? 0)), attrs: { "data-passed": String(!!review.passed) } }),
        document.createTextNode(review.passed ? " Passed" : " Failed"),
      ]);
      const items = failures.map((f) => el("li", { attrs: { "data-rule": String(f.rule || "") } }, [
        el("b", { text: String(f.rule || "rule") }),
        document.createTextNode(`: ${f.description || ""}`),
        num(f.weight) !== null ? el("span", { cls: "hint", text: ` (−${f.weight})` }) : null,
        f.detail ? el("span", { cls: "failure-detail", text: ` ${f.detail}` }) : null,
        Array.isArray(f.lines) && f.lines.length > 0 ? el("span", { cls: "hint", text: ` lines ${f.lines.join(", ")}` }) : null,
      ]));
      ui.callScore.replaceChildren(head, items.length > 0
        ? el("ul", { cls: "failures" }, items)
        : el("p", { cls: "empty", text: "Every check passed." }));
    }

    const lines = Array.isArray(data.transcript) ? data.transcript.filter((l) => l && typeof l === "object") : [];
    if (lines.length === 0) {
      ui.callTranscript.replaceChildren(el("li", { cls: "event", text: "No transcript." }));
    } else {
      ui.callTranscript.replaceChildren(...lines.map((line) => {
        const role = Object.hasOwn(ROLE_LABELS, line.role) ? line.role : "event";
        const item = el("li", { cls: role, attrs: { "data-seq": String(line.seq) } });
        const meta = el("span", { cls: "line-meta" });
        meta.append(`${line.seq ?? ""} · ${ROLE_LABELS[role]}`);
        const at = parseTime(line.at);
        if (Number.isFinite(at)) meta.append(` · ${fmtClock(at)}`);
        if (line.intent) meta.appendChild(el("span", { cls: "line-intent", text: String(line.intent) }));
        item.append(meta, String(line.text ?? ""));
        const rules = failedLines.get(line.seq);
        if (rules) {
          item.classList.add("failed");
          item.appendChild(el("span", { cls: "line-failed", text: `Failed: ${rules.join(", ")}` }));
        }
        return item;
      }));
    }

    const events = Array.isArray(data.events) ? data.events.filter((e) => e && typeof e === "object") : [];
    ui.callEvents.replaceChildren(events.length === 0
      ? el("p", { cls: "empty", text: "No events." })
      : dataTable(events.map((e) => ({ ...e, at: Number.isFinite(parseTime(e.at)) ? fmtClock(parseTime(e.at)) : e.at })),
        [["at", "At"], ["kind", "Kind"], ["name", "Name"], ["label", "Label"], ["value", "Value", count]], "Call events"));

    const recordings = Array.isArray(data.recordings) ? data.recordings.filter((r) => r && typeof r.url === "string") : [];
    ui.callRecordingsBox.hidden = recordings.length === 0;
    ui.callRecordings.replaceChildren(...recordings.map((r, i) => {
      const audio = el("audio", { attrs: { controls: "", preload: "none", "aria-label": `Recording ${i + 1}` } });
      // Same-origin recordings only: a URL elsewhere would leak the page's cookie context.
      const url = new URL(r.url, location.href);
      if (url.origin === location.origin) audio.src = url.href;
      return el("div", { cls: "recording" }, [audio]);
    }));
  }

  // ======================================================================================
  // wiring
  // ======================================================================================

  function onSubmit(form, run) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      run();
    });
  }

  function wireUp() {
    $("btn-signout").addEventListener("click", signOut);
    $("btn-forbidden-signout").addEventListener("click", signOut);
    for (const tab of ui.tabs) {
      tab.addEventListener("click", () => showView(tab.dataset.view));
      tab.addEventListener("keydown", tabKeys);
    }
    onSubmit(ui.botForm, loadBot);
    onSubmit(ui.reportForm, loadReport);
    onSubmit(ui.forecastForm, loadForecast);
    onSubmit(ui.callsForm, loadCalls);
    ui.reportForm.elements.report.addEventListener("change", loadReport);
    $("btn-call-close").addEventListener("click", () => {
      ui.callView.hidden = true;
      supervisor.call = null;
      history.replaceState(null, "", "#calls");
    });
    window.addEventListener("hashchange", () => {
      if (!ui.main.hidden) showView(viewFromHash(), false);
    });
    window.addEventListener("resize", resizeCharts);
    setInterval(tick, TICK_MS);
  }

  wireUp();
  boot();
})();
