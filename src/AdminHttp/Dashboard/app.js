// The broker's dashboard: hash routes over the admin API, no framework. Every API call carries the admin token kept
// in sessionStorage (when the API asked for one); the stats stream is read with fetch() because EventSource cannot
// send an Authorization header.
"use strict";

const TOKEN_KEY = "broker-admin-token";
const CHART_POINTS = 60;
const view = document.getElementById("view");

// ---- DOM helpers: text always goes in as text, never as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
const svg = (tag, attrs) => {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
};
// replaceChildren would print a skipped (null) part as the text "null".
const show = (parent, ...children) => parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
const fmt = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }));
function duration(s) {
  if (s === undefined || s === null) return "–";
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${s % 60}s`;
}

// ---- The API: a 401 asks for a token; any other failure is an ApiError with the body's "error" text.
class ApiError extends Error {
  constructor(status, message, detail) { super(message); this.status = status; this.detail = detail; }
}
class AuthNeeded extends Error {}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: "Bearer " + token } : {};
}

async function api(path, options) {
  const response = await fetch(path, { ...options, headers: { Accept: "application/json", ...authHeaders() } });
  if (response.status === 401) {
    askForToken();
    throw new AuthNeeded("unauthorized");
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const detail = (body && body.error) || text || response.statusText;
    throw new ApiError(response.status, `${path}: ${detail} (HTTP ${response.status})`, detail);
  }
  return body;
}

function askForToken() {
  const form = document.getElementById("auth");
  if (!form.hidden) return;
  form.hidden = false;
  view.dataset.state = "auth";
  document.getElementById("token").focus();
}

document.getElementById("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("token");
  if (!input.value.trim()) return;
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  document.getElementById("auth").hidden = true;
  stats.restart();
  route();
});

// ---- Live stats: one fetch() stream of Server-Sent Events for the whole page, rates from successive events.
const stats = {
  latest: null,
  previous: null,
  rates: [], // {t, received, sent, connections}
  controller: null,
  listeners: new Set(),
  retry: null,

  restart() {
    if (this.controller) this.controller.abort();
    clearTimeout(this.retry);
    this.previous = null;
    this.run();
  },

  async run() {
    const controller = new AbortController();
    this.controller = controller;
    const live = document.getElementById("live");
    try {
      const response = await fetch("/api/v1/stats/stream", { headers: { Accept: "text/event-stream", ...authHeaders() }, signal: controller.signal });
      if (response.status === 401) {
        askForToken();
        return; // restarted once a token is entered
      }
      if (!response.ok || !response.body) throw new Error(`stats stream: HTTP ${response.status}`);
      live.textContent = "live";
      live.classList.add("on");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line.startsWith("data:")) this.event(JSON.parse(line.slice(5)));
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      console.warn(err);
    }
    if (this.controller !== controller) return;
    live.textContent = "reconnecting";
    live.classList.remove("on");
    this.retry = setTimeout(() => this.run(), 2000);
  },

  event(s) {
    const now = performance.now();
    if (this.previous) {
      const seconds = Math.max((now - this.previous.t) / 1000, 0.001);
      this.rates.push({
        received: Math.max(0, (s.messages.received - this.previous.s.messages.received) / seconds),
        sent: Math.max(0, (s.messages.sent - this.previous.s.messages.sent) / seconds),
        connections: s.connections.current,
      });
      if (this.rates.length > CHART_POINTS) this.rates.shift();
    }
    this.previous = { t: now, s };
    this.latest = s;
    for (const listener of this.listeners) listener(s);
  },
};

// ---- A line chart in SVG of the last CHART_POINTS values of some series.
function lineChart(id, title, series) {
  const width = 560, height = 140, pad = 4;
  const el = svg("svg", { id, viewBox: `0 0 ${width} ${height}`, "data-points": 0, role: "img", "aria-label": title });
  const box = h("div", { class: "chart" }, h("div", { class: "legend" }, h("strong", {}, title + " "),
    series.map((s) => h("span", { class: s.cls }, "— " + s.label + " ", h("b", { "data-value": s.key }, "–")))), el);
  box.update = (points) => {
    el.replaceChildren();
    el.setAttribute("data-points", points.length);
    const max = Math.max(1, ...points.flatMap((p) => series.map((s) => p[s.key])));
    const label = svg("text", { x: width - pad, y: 12, "text-anchor": "end", "font-size": 11, fill: "#667085" });
    label.textContent = fmt(max);
    el.append(svg("line", { x1: 0, y1: height - pad, x2: width, y2: height - pad, stroke: "#d9dee7" }), label);
    for (const s of series) {
      // The newest point at the right edge.
      const xy = points.map((p, i) => `${(width - (points.length - 1 - i) * (width / (CHART_POINTS - 1))).toFixed(1)},${(height - pad - (p[s.key] / max) * (height - 2 * pad - 12)).toFixed(1)}`);
      el.append(svg("polyline", { points: xy.join(" "), fill: "none", stroke: s.color, "stroke-width": 2 }));
      const last = points.length ? points[points.length - 1][s.key] : null;
      box.querySelector(`[data-value="${s.key}"]`).textContent = last === null ? "–" : fmt(last);
    }
  };
  return box;
}

// ---- Views.
function card(label, id, value) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

function table(columns, rows, rowAttrs) {
  return h("table", { class: "data" },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.title)))),
    h("tbody", {}, rows.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h("td", {}, c.cell ? c.cell(r) : fmtCell(r[c.key])))))));
}
const fmtCell = (v) => (v === undefined || v === null || v === "" ? "–" : typeof v === "number" ? fmt(v) : String(v));

function nodesTable(nodes) {
  return table([
    { title: "Node", key: "id" },
    { title: "Address", key: "address" },
    { title: "Status", key: "status" },
    { title: "Health", cell: (n) => h("span", { class: n.healthy ? "healthy" : "unhealthy" }, n.healthy ? "healthy" : "unhealthy") },
    { title: "Leader", cell: (n) => (n.leader ? "leader" : "") },
    { title: "Uptime", cell: (n) => duration(n.uptime_seconds) },
  ], nodes, (n) => ({ "data-node": n.id }));
}

async function overviewView(params, signal) {
  const o = await api("/api/v1/overview");
  if (signal.aborted) return;
  const rates = lineChart("chart-rates", "Messages/s", [
    { key: "received", label: "received", color: "#2f6fde", cls: "received" },
    { key: "sent", label: "sent", color: "#d9822b", cls: "sent" },
  ]);
  const connections = lineChart("chart-connections", "Connections", [{ key: "connections", label: "current", color: "#2e7d32", cls: "" }]);
  show(view,
    h("div", { class: "cards" },
      card("Node", "ov-node", o.node_id),
      card("Cluster mode", "ov-mode", o.cluster_mode + (o.is_leader ? " (leader)" : "")),
      card("Uptime", "ov-uptime", duration(o.uptime_seconds)),
      card("Connections", "ov-connections", fmt(o.stats.connections.current)),
      card("Connections total", "ov-connections-total", fmt(o.stats.connections.total)),
      card("Sessions connected / total", "ov-sessions", `${fmt(o.sessions.connected)} / ${fmt(o.sessions.total)}`),
      card("Messages received", "ov-received", fmt(o.stats.messages.received)),
      card("Messages sent", "ov-sent", fmt(o.stats.messages.sent))),
    o.unreachable_nodes ? h("p", { class: "notice" }, "Did not answer: " + o.unreachable_nodes.join(", ")) : null,
    h("h2", {}, "Live"),
    h("div", { class: "charts" }, rates, connections),
    h("h2", {}, "Nodes"),
    o.cluster.nodes.length ? nodesTable(o.cluster.nodes) : h("p", { class: "empty" }, "no data"));
  const update = (s) => {
    if (s) {
      document.getElementById("ov-connections").textContent = fmt(s.connections.current);
      document.getElementById("ov-connections-total").textContent = fmt(s.connections.total);
      document.getElementById("ov-received").textContent = fmt(s.messages.received);
      document.getElementById("ov-sent").textContent = fmt(s.messages.sent);
      document.getElementById("ov-uptime").textContent = duration(s.uptime_seconds);
    }
    rates.update(stats.rates);
    connections.update(stats.rates);
  };
  update(stats.latest);
  stats.listeners.add(update);
  signal.addEventListener("abort", () => stats.listeners.delete(update));
  return "ready";
}

// The filters and page of a list live in the hash (#/sessions?state=connected&limit=2&page_token=...).
function go(name, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const q = query.toString();
  location.hash = `#/${name}${q ? "?" + q : ""}`;
}

function pager(name, params, next, count) {
  const { page_token, ...rest } = params;
  return h("div", { class: "pager" },
    h("button", { id: "first", type: "button", disabled: !page_token, onclick: () => go(name, rest) }, "First"),
    h("button", { id: "next", type: "button", disabled: !next, onclick: () => go(name, { ...rest, page_token: next }) }, "Next"),
    h("span", { id: "page-count" }, `${count} on this page${next ? "" : " (last page)"}`));
}

function limitSelect(params) {
  const sizes = ["10", "25", "50", "100"];
  if (params.limit && !sizes.includes(params.limit)) sizes.unshift(params.limit);
  return h("label", {}, "Page size", h("select", { name: "limit" },
    sizes.map((s) => h("option", { value: s, selected: (params.limit || "25") === s }, s))));
}

function listQuery(params, keys) {
  const q = new URLSearchParams();
  for (const k of keys) if (params[k]) q.set(k, params[k]);
  if (!q.has("limit")) q.set("limit", "25");
  return q.toString();
}

async function sessionsView(params, signal) {
  const page = await api("/api/v1/sessions?" + listQuery(params, ["state", "prefix", "node", "protocol", "username", "limit", "page_token"]));
  if (signal.aborted) return;
  const select = (name, title, options) => h("label", {}, title, h("select", { name },
    options.map(([v, t]) => h("option", { value: v, selected: (params[name] || "") === v }, t))));
  const form = h("form", { class: "filters", id: "session-filters" },
    select("state", "State", [["", "all"], ["connected", "connected"], ["disconnected", "disconnected"]]),
    h("label", {}, "Client ID prefix", h("input", { name: "prefix", value: params.prefix || "" })),
    h("label", {}, "Node", h("input", { name: "node", value: params.node || "" })),
    select("protocol", "Protocol", [["", "any"], ["mqtt3.1", "MQTT 3.1"], ["mqtt3.1.1", "MQTT 3.1.1"], ["mqtt5", "MQTT 5"], ["amqp0.9.1", "AMQP 0-9-1"]]),
    limitSelect(params),
    h("button", { type: "submit", id: "apply" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go("sessions", Object.fromEntries(new FormData(form)));
  });
  const detail = h("div", { id: "detail", class: "detail", hidden: true });
  const rows = page.sessions;
  const list = rows.length
    ? table([
      { title: "Client ID", key: "client_id" },
      { title: "State", cell: (s) => h("span", { class: "state-" + s.state }, s.state) },
      { title: "Protocol", key: "protocol" },
      { title: "Node", key: "node" },
      { title: "Subscriptions", key: "subscription_count" },
      { title: "In flight", key: "inflight_count" },
      { title: "Queued", key: "offline_queue_depth" },
    ], rows, (s) => ({
      class: "clickable", "data-client-id": s.client_id,
      onclick: (e) => {
        view.querySelectorAll("tr.selected").forEach((r) => r.classList.remove("selected"));
        e.currentTarget.classList.add("selected");
        showSession(detail, s.client_id);
      },
    }))
    : h("p", { class: "empty" }, "no data");
  show(view, form,
    page.unreachable_nodes ? h("p", { class: "notice" }, "Did not answer: " + page.unreachable_nodes.join(", ")) : null,
    pager("sessions", params, page.next_page_token, rows.length),
    h("div", { class: "split" }, list, detail));
  return rows.length ? "ready" : "empty";
}

async function showSession(panel, clientId) {
  panel.hidden = false;
  panel.replaceChildren(h("p", { class: "empty" }, "loading " + clientId));
  let s;
  try {
    s = await api("/api/v1/sessions/" + encodeURIComponent(clientId));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      panel.replaceChildren(h("h2", {}, clientId), h("p", { id: "detail-state", class: "state-disconnected" }, "disconnected (session ended)"));
    } else {
      panel.replaceChildren(errorBox(err));
    }
    return;
  }
  const kick = h("button", { id: "kick", type: "button", class: "danger", disabled: !s.connected }, "Kick");
  kick.addEventListener("click", async () => {
    if (!confirm(`Disconnect ${clientId}?`)) return;
    kick.disabled = true;
    try {
      await api("/api/v1/sessions/" + encodeURIComponent(clientId), { method: "DELETE" });
    } catch (err) {
      panel.append(errorBox(err));
      return;
    }
    // The client is disconnected asynchronously: show the session once it says so (or is gone).
    for (let i = 0; i < 20; i++) {
      try {
        const after = await api("/api/v1/sessions/" + encodeURIComponent(clientId));
        if (!after.connected) break;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) { panel.append(errorBox(err)); return; }
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    showSession(panel, clientId);
    const row = [...view.querySelectorAll("tr[data-client-id]")].find((r) => r.dataset.clientId === clientId);
    if (row) {
      const state = row.querySelector("td:nth-child(2) span");
      state.textContent = "disconnected";
      state.className = "state-disconnected";
    }
  });
  const field = (t, v) => [h("dt", {}, t), h("dd", {}, fmtCell(v))];
  panel.replaceChildren(
    h("h2", {}, s.client_id),
    h("dl", {},
      h("dt", {}, "State"), h("dd", {}, h("span", { id: "detail-state", class: "state-" + s.state }, s.state)),
      field("Protocol", s.protocol), field("Node", s.node), field("Connection name", s.connection_name),
      field("Connected at", s.connected_at), field("Disconnected at", s.disconnected_at),
      field("Clean start", String(s.clean_start)), field("Expiry (s)", s.expiry_interval),
      h("dt", {}, "In flight"), h("dd", { id: "detail-inflight" }, fmt(s.inflight_count)),
      h("dt", {}, "Offline queue"), h("dd", { id: "detail-queue" }, fmt(s.offline_queue_depth))),
    h("h3", {}, "Subscriptions"),
    s.subscriptions.length
      ? table([{ title: "Filter", key: "filter" }, { title: "QoS", key: "qos" }, { title: "No local", cell: (x) => String(x.no_local) },
        { title: "Group", key: "consumer_group" }], s.subscriptions)
      : h("p", { class: "empty", id: "detail-no-subscriptions" }, "no subscriptions"),
    kick);
}

// A paged list of one endpoint, as a table.
function listView(name, path, key, columns, filters) {
  return async (params, signal) => {
    let page;
    try {
      page = await api(path + "?" + listQuery(params, ["prefix", "limit", "page_token"]));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        // Not an outage: this node has no such endpoint (yet).
        show(view, h("p", { class: "notice", id: "unavailable" }, `Not available on this node: GET ${path} answered 404 (${err.detail}).`));
        return "unavailable";
      }
      throw err;
    }
    if (signal.aborted) return;
    const rows = page[key] || [];
    const form = h("form", { class: "filters" },
      filters ? h("label", {}, filters, h("input", { name: "prefix", value: params.prefix || "" })) : null,
      limitSelect(params), h("button", { type: "submit" }, "Apply"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      go(name, Object.fromEntries(new FormData(form)));
    });
    const unreachable = page.unreachable_nodes || page.unreachable_queues;
    show(view, form,
      unreachable ? h("p", { class: "notice" }, "Did not answer: " + unreachable.join(", ")) : null,
      pager(name, params, page.next_page_token, rows.length),
      rows.length ? table(columns, rows) : h("p", { class: "empty" }, "no data"));
    return rows.length ? "ready" : "empty";
  };
}

async function clusterView(params, signal) {
  const c = await api("/api/v1/cluster");
  if (signal.aborted) return;
  show(view,
    h("div", { class: "cards" }, card("This node", "cl-node", c.node_id), card("Mode", "cl-mode", c.cluster_mode),
      card("Leader", "cl-leader", c.is_leader ? "this node" : "another node"), card("Members", "cl-count", c.nodes.length)),
    c.unreachable_nodes ? h("p", { class: "notice" }, "Did not answer: " + c.unreachable_nodes.join(", ")) : null,
    h("h2", {}, "Members"),
    c.nodes.length ? nodesTable(c.nodes) : h("p", { class: "empty" }, "no data"));
  return c.nodes.length ? "ready" : "empty";
}

const views = {
  overview: overviewView,
  sessions: sessionsView,
  subscriptions: listView("subscriptions", "/api/v1/subscriptions", "subscriptions", [
    { title: "Filter", key: "filter" }, { title: "Subscribers", key: "subscriber_count" }, { title: "Max QoS", key: "max_qos" },
  ], "Filter prefix"),
  queues: listView("queues", "/api/v1/amqp/queues", "queues", [
    { title: "Name", key: "name" }, { title: "Durable", cell: (q) => String(q.durable) }, { title: "Exclusive", cell: (q) => String(q.exclusive) },
    { title: "Auto-delete", cell: (q) => String(q.auto_delete) }, { title: "Ready", key: "messages_ready" },
    { title: "Unacked", key: "messages_unacknowledged" }, { title: "Consumers", key: "consumers" }, { title: "Node", key: "node" },
  ], "Name prefix"),
  retained: listView("retained", "/api/v1/retained", "retained", [
    { title: "Topic", key: "topic" }, { title: "QoS", key: "qos" }, { title: "Payload bytes", key: "payload_bytes" }, { title: "Updated", key: "updated_at" },
  ], "Topic prefix"),
  cluster: clusterView,
};

function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err.message || String(err));
}

// ---- Routing: #/name?query; each render can be abandoned by the next one.
let current = null;
async function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const name = views[path] ? path : "overview";
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === name));
  view.dataset.view = name;
  view.dataset.state = "loading";
  view.replaceChildren(h("p", { class: "empty" }, "loading…"));
  try {
    const state = await views[name](params, controller.signal);
    if (!controller.signal.aborted) view.dataset.state = state;
  } catch (err) {
    if (controller.signal.aborted) return;
    if (err instanceof AuthNeeded) {
      view.replaceChildren(h("p", { class: "empty" }, "waiting for a token"));
      view.dataset.state = "auth";
      return;
    }
    view.replaceChildren(errorBox(err));
    view.dataset.state = "error";
  }
}

window.addEventListener("hashchange", route);
stats.run();
route();
