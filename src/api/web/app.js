// hotline's pages: the agent desktop, the wallboard and the reports, on the CTI API and its
// event stream. No framework and nothing fetched from elsewhere; every value shown is set as
// text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (!r.ok) {
    const e = new Error((data && data.error) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return data;
}

function seconds(s) {
  if (s === null || s === undefined) return "-";
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
}

function pct(v) {
  return v === null || v === undefined ? "-" : `${v.toFixed(1)}%`;
}

function flash(message) {
  const box = $("error");
  if (box) box.textContent = message || "";
}

async function guarded(f) {
  try {
    flash("");
    await f();
  } catch (e) {
    flash(e.message);
  }
}

// The event stream, reconnecting after a close (a resync, a restart) with a growing,
// jittered wait; an ended session shows the login form instead.
function stream(onMessage, queues = true) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let wait = 1000;
  const open = () => {
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/events${queues ? "" : "?queues=false"}`);
    ws.onmessage = (m) => {
      wait = 1000;
      flash("");
      try { onMessage(JSON.parse(m.data)); } catch (e) { console.error(e); }
    };
    ws.onclose = async () => {
      flash("Disconnected; reconnecting...");
      if (!(await session().catch(() => true))) return location.reload();
      setTimeout(open, wait + Math.random() * wait);
      wait = Math.min(wait * 2, 30000);
    };
  };
  open();
}

async function session() {
  try {
    return await api("GET", "/api/v1/me");
  } catch (e) {
    if (e.status !== 401) throw e;
    return null;
  }
}

function showLogin() {
  $("app").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api("POST", "/api/v1/session", { user: $("user").value, password: $("password").value });
      location.reload();
    });
  });
}

function header(me) {
  $("who").textContent = `${me.user} (${me.role})`;
  $("logout").addEventListener("click", () =>
    guarded(async () => {
      await api("DELETE", "/api/v1/session");
      location.reload();
    }));
  const page = document.body.dataset.page;
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    if (me.role === "agent" && a.dataset.page !== "desk") a.classList.add("hidden");
  }
}

// ---- agent desktop -------------------------------------------------------------------

function desk(me) {
  if (!me.agent) {
    flash("This user is not an agent: the desktop needs a user with an agent id.");
    return;
  }
  const agent = me.agent;
  let state = "logged_out";
  for (const r of me.reasons || []) $("reason").append(el("option", { value: r }, r));
  $("disposition").append(el("option", { value: "" }, "(choose)"));
  for (const d of me.dispositions || []) $("disposition").append(el("option", { value: d.code }, d.label));

  let current = null; // the call on screen (CDR id), named in call commands
  const command = async (path, body) => {
    try {
      flash("");
      await api("POST", `/api/v1/agents/${encodeURIComponent(agent)}/${path}`, body);
      return true;
    } catch (e) {
      flash(e.message);
      return false;
    }
  };
  $("ready").addEventListener("click", () => command("state", { state: "ready" }));
  $("not-ready").addEventListener("click", () => command("state", { state: "not_ready", reason: $("reason").value }));
  $("log-in").addEventListener("click", () => command("state", { state: "logged_in" }));
  $("log-out").addEventListener("click", () => command("state", { state: "logged_out" }));
  $("hold").addEventListener("click", () => command("hold", { hold: state !== "on_hold", call: current || undefined }));
  $("hang-up").addEventListener("click", () => command("hang-up", { call: current || undefined }));
  $("transfer").addEventListener("click", async () => {
    const done = await command("transfer", {
      target: $("transfer-target").value,
      reason: $("transfer-reason").value || undefined,
      call: current || undefined,
    });
    if (done) { $("transfer-target").value = ""; $("transfer-reason").value = ""; }
  });
  // Attended transfer: the caller waits on hold while the agent talks to the colleague.
  let consulting = false;
  const showConsult = (target, said) => {
    consulting = Boolean(said);
    $("consulting").classList.toggle("hidden", !consulting);
    if (consulting) {
      $("consult-target").textContent = target;
      $("consult-state").textContent = said;
    }
    $("consult-complete").disabled = said !== "on the line";
    for (const id of ["hold", "transfer", "consult"]) $(id).disabled = consulting || !(state === "on_call" || state === "on_hold");
  };
  $("consult").addEventListener("click", async () => {
    const target = $("transfer-target").value;
    // The stream's first word on it may have come before the reply.
    if (await command("consult", { target, call: current || undefined }) && !consulting) showConsult(target, "calling");
  });
  $("consult-complete").addEventListener("click", async () => {
    const done = await command("consult/complete", {
      reason: $("transfer-reason").value || undefined,
      call: current || undefined,
    });
    if (done) { $("transfer-target").value = ""; $("transfer-reason").value = ""; }
  });
  $("consult-cancel").addEventListener("click", () => command("consult/cancel", { call: current || undefined }));
  const consultSaid = {
    queued: "waiting for an agent", ringing: "ringing", talking: "on the line", completed: "", cancelled: "",
    no_answer: "", failed: "", ended: "",
  };
  const consultOver = {
    no_answer: "did not answer", failed: "could not take the call", ended: "hung up",
  };
  const resetWrap = () => { $("notes").value = ""; $("resolved").value = ""; $("disposition").value = ""; };
  $("wrap-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const resolved = $("resolved").value;
    const done = await command("wrap-up", {
      disposition: $("disposition").value || undefined,
      notes: $("notes").value || undefined,
      resolved: resolved === "" ? undefined : resolved === "yes",
      done: true,
    });
    if (done) resetWrap();
  });

  const show = (view) => {
    state = view.state;
    const badge = $("state");
    badge.textContent = view.state.replace("_", " ") + (view.reason ? ` (${view.reason})` : "");
    badge.className = `state ${view.state}`;
    const talking = state === "on_call" || state === "on_hold";
    for (const id of ["hold", "transfer", "consult"]) $(id).disabled = !talking || consulting;
    $("hang-up").disabled = !talking;
    if (!talking && consulting) showConsult("", "");
    $("hold").textContent = state === "on_hold" ? "Resume" : "Hold";
    if (state === "wrap_up" && $("wrap").classList.contains("hidden")) resetWrap();
    $("wrap").classList.toggle("hidden", state !== "wrap_up");
    if (!talking && state !== "ringing" && state !== "wrap_up") $("call").classList.add("hidden");
    $("log-in").disabled = state !== "logged_out";
  };

  const pop = (offer) => {
    current = offer.call;
    $("call").classList.remove("hidden");
    const dl = $("pop");
    dl.replaceChildren();
    const row = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    row("Caller", offer.caller);
    row("Dialled", offer.dialled);
    row("Queue", offer.queue);
    row("Waited", seconds(offer.waited_ms / 1000));
    row("Priority", offer.priority ? String(offer.priority) : "normal");
    row("Language", offer.language);
    for (const [k, v] of offer.labels || []) row(k, v);
    for (const [k, v] of offer.variables || []) row(k, v);
    row("IVR path", (offer.ivr_path || []).join(" > "));
    $("history").replaceChildren(el("li", { class: "muted" }, "looking up past calls..."));
  };

  const history = (calls) => {
    const list = $("history");
    list.replaceChildren();
    if (!calls.length) list.append(el("li", { class: "muted" }, "no earlier calls"));
    for (const c of calls) {
      const when = new Date(c.start).toLocaleString();
      const parts = [when, c.agent ? `agent ${c.agent}` : "no agent", c.disposition || c.wrap_disposition || ""];
      list.append(el("li", {}, parts.filter(Boolean).join(" - ")));
    }
  };

  stream((m) => {
    if (m.type === "hello") {
      const mine = (m.agents || []).find((a) => a.id === agent);
      if (mine) show(mine);
    } else if (m.type === "agent" && m.agent.id === agent) {
      show(m.agent);
    } else if (m.type === "offer" && m.offer.agent === agent) {
      pop(m.offer);
    } else if (m.type === "history" && m.call === current) {
      history(m.history || []);
    } else if (m.type === "consult" && m.consult.agent === agent) {
      const c = m.consult;
      showConsult(c.colleague ? `${c.target} (${c.colleague})` : c.target, consultSaid[c.state] ?? c.state);
      if (consultOver[c.state]) flash(`${c.target} ${consultOver[c.state]}: you are back with the caller.`);
    }
  }, false); // the desk shows no queues: it does not ask for their changes
}

// ---- wallboard ------------------------------------------------------------------------

function wallboard(me) {
  const agents = new Map();
  let queues = [];
  let received = Date.now();

  const drawQueues = () => {
    const body = $("queues");
    body.replaceChildren();
    const since = (Date.now() - received) / 1000;
    for (const q of queues) {
      const longest = q.waiting ? q.longest_wait_s + since : 0;
      body.append(el("tr", {},
        el("td", {}, q.name),
        el("td", { class: "num", "data-queue-waiting": q.name }, q.waiting),
        el("td", { class: "num" }, q.waiting ? seconds(longest) : "-"),
        el("td", { class: "num" }, q.agents_logged_in)));
    }
    $("waiting-total").textContent = queues.reduce((n, q) => n + q.waiting, 0);
  };
  const drawAgents = () => {
    const counts = {};
    for (const a of agents.values()) counts[a.state] = (counts[a.state] || 0) + 1;
    const body = $("agents");
    body.replaceChildren();
    for (const s of ["available", "ringing", "on_call", "on_hold", "wrap_up", "not_ready", "logged_out"]) {
      body.append(el("tr", {}, el("td", {}, el("span", { class: `state ${s}` }, s.replace("_", " "))),
        el("td", { class: "num", "data-state": s }, counts[s] || 0)));
    }
  };
  let lastToday = 0;
  let pendingToday = null;
  // At most one report in flight or waiting, and at most one every 10 s.
  const soon = () => {
    if (pendingToday) return;
    const wait = Math.max(0, lastToday + 10000 - Date.now());
    pendingToday = setTimeout(() => { pendingToday = null; today(); }, wait);
  };
  const today = () => guarded(async () => {
    lastToday = Date.now();
    const r = await api("GET", "/api/v1/reports?interval=all");
    const i = r.rows[0] ? r.rows[0].indicators : {};
    const sl = i.service_level_pct;
    $("sl").textContent = pct(sl);
    $("sl").className = "big " + (sl === null || sl === undefined ? "" : sl >= r.service_level_target_pct ? "good" : "bad");
    $("sl-target").textContent = `target ${r.service_level_target_pct}% in ${r.service_level_s}s`;
    $("abandon").textContent = pct(i.abandon_pct);
    $("answered").textContent = i.answered ?? 0;
    $("total").textContent = i.total_calls ?? 0;
    $("asa").textContent = seconds(i.asa_s);
  });

  stream((m) => {
    if (m.type === "hello") {
      agents.clear();
      for (const a of m.agents || []) agents.set(a.id, a);
      queues = m.queues || [];
      received = Date.now();
      drawQueues();
      drawAgents();
    } else if (m.type === "agent") {
      agents.set(m.agent.id, m.agent);
      drawAgents();
      if (m.agent.state === "wrap_up" || m.agent.state === "available") soon();
    } else if (m.type === "queues") {
      queues = m.queues || [];
      received = Date.now();
      drawQueues();
    }
  });
  today();
  setInterval(soon, 15000);
  setInterval(drawQueues, 1000);
}

// ---- reports --------------------------------------------------------------------------

function lineChart(svg, series, labels, target) {
  const w = 800, h = 220, pad = 30;
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  if (target !== undefined) values.push(target);
  const max = Math.max(1, ...values);
  const x = (i) => pad + (labels.length < 2 ? 0 : (i * (w - 2 * pad)) / (labels.length - 1));
  const y = (v) => h - pad - (v / max) * (h - 2 * pad);
  node("line", { class: "axis", x1: pad, y1: h - pad, x2: w - pad, y2: h - pad });
  node("line", { class: "axis", x1: pad, y1: pad, x2: pad, y2: h - pad });
  node("text", { x: 2, y: pad }, String(Math.round(max)));
  if (labels.length) {
    node("text", { x: pad, y: h - 8 }, labels[0]);
    node("text", { x: w - pad - 110, y: h - 8 }, labels[labels.length - 1]);
  }
  if (target !== undefined) {
    node("line", { x1: pad, x2: w - pad, y1: y(target), y2: y(target), stroke: "#c4302b", "stroke-dasharray": "4 4" });
  }
  for (const s of series) {
    const points = s.values.map((v, i) => (v === null || v === undefined ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    node("polyline", { points: points.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "data-series": s.name });
    s.values.forEach((v, i) => {
      if (v !== null && v !== undefined && v > 0) node("circle", { cx: x(i), cy: y(v), r: 3, fill: s.color });
    });
    node("text", { x: w - pad - 110, y: pad + 14 * series.indexOf(s), fill: s.color }, s.name);
  }
}

function reports(me) {
  const today = new Date();
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  $("from").value = iso(new Date(today.getTime() - 6 * 86400000));
  $("to").value = iso(new Date(today.getTime() + 86400000));
  if (me.role === "agent") $("by").value = "agent";
  $("report-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const q = new URLSearchParams({ from: $("from").value, to: $("to").value, interval: $("interval").value, by: $("by").value });
      const r = await api("GET", `/api/v1/reports?${q}`);
      draw(r);
    });
  });
  const draw = (r) => {
    const overall = r.by === "all";
    const rows = r.rows;
    const groups = new Map();
    for (const x of rows) {
      if (!groups.has(x.start)) groups.set(x.start, []);
      groups.get(x.start).push(x.indicators);
    }
    const labels = [...groups.keys()];
    const byStart = (f) => labels.map((l) => groups.get(l).reduce((n, i) => n + (f(i) || 0), 0));
    lineChart($("calls-chart"), [
      { name: "total calls", color: "#2457c5", values: byStart((i) => i.total_calls) },
      { name: "answered", color: "#1a7f37", values: byStart((i) => i.answered) },
      { name: "abandoned", color: "#c4302b", values: byStart((i) => i.abandoned) },
    ], labels);
    if (overall) {
      lineChart($("sl-chart"), [
        { name: "service level %", color: "#1a7f37", values: rows.map((x) => x.indicators.service_level_pct) },
      ], labels, r.service_level_target_pct);
    }
    $("sl-section").classList.toggle("hidden", !overall);
    const cols = [["total_calls", "calls"], ["answered", "answered"], ["service_level_pct", "SL %"],
      ["asa_s", "ASA s"], ["abandon_pct", "abandon %"], ["aht_s", "AHT s"], ["occupancy_pct", "occupancy %"],
      ["adherence_pct", "adherence %"], ["fcr_pct", "FCR %"], ["transfer_pct", "transfer %"], ["qa_score", "QA"]];
    const head = $("report-head");
    head.replaceChildren(el("tr", {}, el("th", {}, "interval"), el("th", {}, "group"), ...cols.map(([, t]) => el("th", { class: "num" }, t))));
    const body = $("report-body");
    body.replaceChildren();
    for (const row of rows) {
      body.append(el("tr", {}, el("td", {}, row.start), el("td", {}, row.group ?? (overall ? "all" : "(none)")),
        ...cols.map(([k]) => {
          const v = row.indicators[k];
          const count = k === "total_calls" || k === "answered";
          return el("td", { class: "num", "data-indicator": k }, v === null || v === undefined ? "-" : count ? v : v.toFixed(1));
        })));
    }
  };
}

// ---- quality monitoring ---------------------------------------------------------------

function qa(me) {
  let chosen = null;
  const choose = (c) => {
    chosen = c.call;
    $("qa-panel").classList.remove("hidden");
    $("qa-which").textContent = `${new Date(c.start_ms).toLocaleString()} - ${c.caller} - agent ${c.agent}`;
    $("qa-audio").src = `/api/v1/calls/${encodeURIComponent(c.call)}/recordings/0`;
    $("qa-score").value = "";
    $("qa-notes").value = "";
    $("qa-saved").textContent = "";
  };
  $("qa-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      await api("POST", `/api/v1/calls/${encodeURIComponent(chosen)}/qa`, {
        score: Number($("qa-score").value),
        notes: $("qa-notes").value || undefined,
      });
      $("qa-saved").textContent = "saved";
    });
  });
  guarded(async () => {
    const r = await api("GET", "/api/v1/calls");
    const body = $("qa-calls");
    body.replaceChildren();
    if (!r.calls.length) body.append(el("tr", {}, el("td", { class: "muted" }, "no recorded calls yet")));
    for (const c of r.calls) {
      body.append(el("tr", {},
        el("td", {}, new Date(c.start_ms).toLocaleString()),
        el("td", {}, c.caller),
        el("td", {}, c.queue ?? ""),
        el("td", {}, c.agent ?? ""),
        el("td", { class: "num" }, seconds(c.talk_s)),
        el("td", {}, c.disposition ?? ""),
        el("td", {}, el("button", { type: "button", "data-call": c.call, onclick: () => choose(c) }, "Listen"))));
    }
  });
}

// ---- start ----------------------------------------------------------------------------

window.addEventListener("DOMContentLoaded", () => guarded(async () => {
  const me = await session();
  if (!me) return showLogin();
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  header(me);
  const page = document.body.dataset.page;
  if (page === "desk") desk(me);
  else if (page === "wallboard") wallboard(me);
  else if (page === "reports") reports(me);
  else if (page === "qa") qa(me);
}));
