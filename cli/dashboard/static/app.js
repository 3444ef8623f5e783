// Foreman dashboard: one page per route, each fed by one server-sent event stream of its view (rendered by the
// server from its watches). The page never talks to the apiserver and never polls. No build step, no framework;
// the DOM is built with textContent only, so names, prompts and transcripts can never become markup.
"use strict";

const TOKEN = document.querySelector('meta[name="foreman-token"]').content;
const ACTIONS = document.querySelector('meta[name="foreman-actions"]').content === "true";
const view = document.getElementById("view");
const live = document.getElementById("live");
let stream = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "style") el.style.cssText = value; // NB: through the CSSOM, which the CSP allows
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const badge = (text, cls) => h("span", { class: `badge ${cls}` }, text);
const taskLink = (t) => h("a", { href: `#/task/${enc(t.namespace)}/${enc(t.name)}` }, t.name);
const enc = encodeURIComponent;

function errors(body) {
  return body.errors && body.errors.length ? h("div", { class: "errors" }, body.errors.map((e) => h("div", {}, e))) : "";
}

// -- routing ---------------------------------------------------------------------------------------------------------

function route() {
  const [path, query] = (location.hash.replace(/^#/, "") || "/fleet").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  const page = parts[0] || "fleet";
  if (page === "task" || (page === "graph" && parts.length === 3)) {
    params.set("namespace", parts[1]);
    params.set("name", parts[2]);
  }
  return { page, params };
}

function open() {
  const { page, params } = route();
  document.querySelectorAll("nav a").forEach((a) => {
    a.classList.toggle("active", a.dataset.page === page || (page === "task" && a.dataset.page === "tasks"));
  });
  const renderers = { fleet: renderFleet, tasks: renderTasks, graph: renderGraph, task: renderTask, schedules: renderSchedules };
  const render = renderers[page] || renderFleet;
  if (stream) stream.close();
  view.replaceChildren(h("p", { class: "empty" }, "loading…"));
  view.dataset.page = page;
  const context = { params, state: {} };
  stream = new EventSource(`/events/${renderers[page] ? page : "fleet"}?${params}`);
  stream.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  stream.onerror = () => { live.textContent = "reconnecting"; live.classList.remove("on"); };
  stream.onmessage = (message) => {
    const body = JSON.parse(message.data);
    render(body, context);
    view.dataset.updates = String(Number(view.dataset.updates || 0) + 1);
  };
}

window.addEventListener("hashchange", open);
window.addEventListener("DOMContentLoaded", open);

// What each action last said, by its path: the page is redrawn on every change the server sends (the action's own
// effect among them), so the message is kept here and drawn with the page, not only written into the current DOM.
// NB: the effect can arrive (and redraw) before the action's own answer: the answer is then written into whatever
// message element shows that path now, never into the one the click came from, which may be gone.
const said = new Map();
const message = (path) => h("span", { class: "message", "data-path": path }, said.get(path) || "");

async function act(path, button, label) {
  button.disabled = true;
  try {
    const response = await fetch(path, { method: "POST", headers: { "X-Foreman-Token": TOKEN } });
    const body = await response.json();
    said.set(path, response.ok ? body.message : `refused: ${body.error}`);
  } catch (error) {
    said.set(path, `${label} failed: ${error}`);
  } finally {
    document.querySelectorAll(".message").forEach((note) => {
      if (note.dataset.path === path) note.textContent = said.get(path);
    });
    button.disabled = false;
  }
}

// -- fleet -----------------------------------------------------------------------------------------------------------

function renderFleet(body) {
  const cards = body.nodes.map((n) => {
    const ramShare = n.ram.total ? Math.round((100 * n.ram.used) / n.ram.total) : 0;
    const models = n.models.length
      ? n.models.map((m) => `${m.name}${m.contextTokens ? ` (${m.contextTokens.toLocaleString("en")} ctx` : ""}` +
          `${m.tokensPerSecond ? `, ${m.tokensPerSecond} tok/s` : ""}${m.contextTokens ? ")" : ""}`).join(", ")
      : "-";
    return h("section", { class: "card node", "data-node": n.name },
      h("h3", {}, n.name, badge(n.phase, `phase-${n.phase}`)),
      h("dl", {},
        h("dt", {}, "accelerator"), h("dd", { class: "accelerator" }, n.accelerator),
        h("dt", {}, "RAM"), h("dd", { class: "ram" }, `${n.ram.used} / ${n.ram.total} GB used`,
          h("div", { class: "bar" }, h("span", { style: `width:${ramShare}%` }))),
        h("dt", {}, "context"), h("dd", { class: "context" }, n.contextTokens ? `${n.contextTokens.toLocaleString("en")} tokens` : "-"),
        h("dt", {}, "models"), h("dd", { class: "models" }, models),
        n.loaded ? [h("dt", {}, "loaded"), h("dd", { class: `loaded${n.loaded.warning ? " warn" : ""}` },
          n.loaded.models.map((m) => `${m.name}${m.sizeGB ? ` (${m.sizeGB} GB)` : ""}`).join(", ") || "none",
          n.loaded.memory ? h("div", { class: "memory" }, `${n.loaded.memory.used} / ${n.loaded.memory.total} GB model memory`) : null,
          n.loaded.warning ? h("div", { class: "model-warning" }, n.loaded.warning) : null)] : null,
        h("dt", {}, "executors"), h("dd", {}, n.executors.join(", ") || "-"),
        h("dt", {}, "sandbox"), h("dd", { class: `sandbox${n.sandbox === "UNCONFINED" ? " warn" : ""}` }, n.sandbox),
        h("dt", {}, "labels"), h("dd", {}, Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"),
        h("dt", {}, "slots"), h("dd", { class: "slots" }, `${n.slots.used} / ${n.slots.total}`,
          h("ul", { class: "slot-tasks" }, n.tasks.map((t) => h("li", {}, h("a", { class: `badge tone-${t.tone}`, href: `#/task/${enc(t.namespace)}/${enc(t.name)}` }, t.name))))),
        h("dt", {}, "heartbeat"), h("dd", { class: `heartbeat hb-${n.heartbeat.level}`, "data-level": n.heartbeat.level },
          n.heartbeat.time ? `${n.heartbeat.age} ago` : "never"),
        n.system ? [h("dt", {}, "system"), h("dd", {}, n.system)] : null));
  });
  const escalations = body.escalations.length
    ? h("table", { class: "escalations" }, h("thead", {}, h("tr", {}, ["from model", "to model", "escalations"].map((c) => h("th", {}, c)))),
        h("tbody", {}, body.escalations.map((e) => h("tr", {}, h("td", {}, e.from), h("td", {}, e.to), h("td", {}, e.count)))))
    : h("p", { class: "empty" }, "none");
  view.replaceChildren(h("h2", {}, `Fleet (${body.nodes.length} nodes)`), errors(body),
    body.nodes.length ? h("div", { class: "cards" }, cards) : h("p", { class: "empty" }, "No FleetNodes: start a worker."),
    h("h3", {}, "Escalations per model"), escalations);
}

// -- tasks -----------------------------------------------------------------------------------------------------------

function renderTasks(body, context) {
  const { params, state } = context;
  if (!state.filters) {
    const select = (name, choices) => h("select", { name, onchange: refilter },
      h("option", { value: "" }, `any ${name}`), choices.map((c) => h("option", { value: c, selected: params.get(name) === c }, c)));
    const refilter = () => {
      const next = new URLSearchParams();
      state.filters.querySelectorAll("select, input").forEach((el) => { if (el.value) next.set(el.name, el.value); });
      location.hash = `#/tasks?${next}`;
    };
    state.filters = h("div", { class: "filters" },
      select("namespace", body.choices.namespace), select("phase", body.choices.phase), select("kind", body.choices.kind),
      h("input", { name: "label", placeholder: "label selector (team=a,urgent)", value: params.get("label") || "", onchange: refilter }),
      select("queue", body.choices.queue));
    state.table = h("div");
    state.heading = h("h2");
    state.errors = h("div");
    view.replaceChildren(state.heading, state.errors, state.filters, state.table);
  }
  state.heading.textContent = `Tasks (${body.rows.length} of ${body.total})`;
  state.errors.replaceChildren(errors(body) || "");
  const header = ["namespace", "name", "phase", "kind", "node", "verdict", "reason / why pending", "queue", "position", "attempts", "age", "graph"];
  const rows = body.rows.map((r) => h("tr", { "data-task": r.name, "data-phase": r.phase },
    h("td", { class: "nowrap" }, r.namespace), h("td", { class: "nowrap" }, taskLink(r)), h("td", {}, badge(r.phase, `tone-${r.tone}`)),
    h("td", {}, r.kind), h("td", { class: "nowrap" }, r.node), h("td", {}, r.verdict),
    h("td", { class: "why" }, r.why || (r.reason === "-" ? "" : r.reason)),
    h("td", {}, r.queue), h("td", {}, r.position), h("td", {}, r.attempts), h("td", {}, r.age),
    h("td", {}, r.inGraph ? h("a", { href: `#/graph/${enc(r.namespace)}/${enc(r.name)}` }, "graph") : "")));
  state.table.replaceChildren(body.rows.length
    ? h("table", {}, h("thead", {}, h("tr", {}, header.map((c) => h("th", {}, c)))), h("tbody", {}, rows))
    : h("p", { class: "empty" }, "No tasks match."));
}

// -- graph -----------------------------------------------------------------------------------------------------------

function renderGraph(body, context) {
  if (body.graphs) {
    const items = body.graphs.map((g) => h("tr", {},
      h("td", {}, g.namespace), h("td", {}, h("a", { href: `#/graph/${enc(g.namespace)}/${enc(g.name)}` }, g.name)),
      h("td", {}, g.size), h("td", {}, Object.entries(g.tones).map(([tone, n]) => badge(`${n} ${tone}`, `tone-${tone}`)))));
    view.replaceChildren(h("h2", {}, "Graphs"), errors(body),
      h("p", { class: "empty" }, "Tasks connected by dependsOn (solid) or by a parent to the children its agent created (dashed); or open #/graph?label=KEY=VALUE for the tasks sharing a label."),
      body.graphs.length
        ? h("table", {}, h("thead", {}, h("tr", {}, ["namespace", "graph (first root)", "tasks", "phases"].map((c) => h("th", {}, c)))), h("tbody", {}, items))
        : h("p", { class: "empty" }, "No graphs."));
    return;
  }
  const { state } = context;
  const shape = JSON.stringify([body.nodes.map((n) => n.id), body.edges]);
  if (state.shape !== shape) {
    state.shape = shape;
    state.svg = layout(body);
    state.errors = h("div");
    view.replaceChildren(h("h2", {}, body.title), state.errors, legend(), h("div", { class: "graph" }, state.svg));
  }
  state.errors.replaceChildren(errors(body) || "");
  for (const n of body.nodes) {
    const g = state.svg.querySelector(`g[data-id="${CSS.escape(n.id)}"]`);
    if (!g) continue;
    g.setAttribute("class", `node tone-${n.tone}`);
    g.dataset.phase = n.phase;
    g.dataset.tone = n.tone;
    g.querySelector("title").textContent = `${n.name}: ${n.phase}${n.verdict ? ` ${n.verdict}` : ""}${n.reason && n.reason !== "-" ? ` (${n.reason})` : ""}`;
    g.querySelector("text.sub").textContent = n.verdict ? `${n.phase} · ${n.verdict}` : n.phase;
  }
}

function legend() {
  return h("div", { class: "legend" }, ["pending", "blocked", "scheduled", "running", "passed", "not-passed", "failed", "missing"]
    .map((tone) => badge(tone, `tone-${tone}`)));
}

function layout(body) {
  const NS = "http://www.w3.org/2000/svg";
  const svgEl = (tag, attrs) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  };
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 50, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of body.nodes) g.setNode(n.id, { width: Math.max(120, 8 * n.name.length + 24), height: 40 });
  for (const e of body.edges) g.setEdge(e.from, e.to, { kind: e.kind });
  dagre.layout(g);
  const { width, height } = g.graph();
  const svg = svgEl("svg", { width: Math.max(width, 200), height: Math.max(height, 80), viewBox: `0 0 ${Math.max(width, 200)} ${Math.max(height, 80)}` });
  const defs = svgEl("defs");
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#677387" }));
  defs.append(marker);
  svg.append(defs);
  for (const e of g.edges()) {
    const points = g.edge(e).points;
    const d = points.map((p, i) => `${i ? "L" : "M"} ${p.x} ${p.y}`).join(" ");
    svg.append(svgEl("path", { class: `edge edge-${g.edge(e).kind}`, d, "marker-end": "url(#arrow)" }));
  }
  for (const n of body.nodes) {
    const box = g.node(n.id);
    const group = svgEl("g", { class: `node tone-${n.tone}`, "data-id": n.id, "data-task": n.name, "data-phase": n.phase, "data-tone": n.tone,
      transform: `translate(${box.x - box.width / 2}, ${box.y - box.height / 2})` });
    const title = svgEl("title");
    group.append(title, svgEl("rect", { width: box.width, height: box.height }));
    const name = svgEl("text", { x: 10, y: 17 });
    name.textContent = n.name;
    const sub = svgEl("text", { x: 10, y: 32, class: "sub", "font-size": "11" });
    group.append(name, sub);
    if (n.tone !== "missing") group.addEventListener("click", () => { location.hash = `#/task/${enc(n.namespace)}/${enc(n.name)}`; });
    svg.append(group);
  }
  return svg;
}

// -- one task --------------------------------------------------------------------------------------------------------

function renderTask(body, context) {
  const { params } = context;
  if (!body.found) {
    view.replaceChildren(h("h2", {}, params.get("name")), errors(body), h("p", { class: "empty" }, "No such task (or it was deleted)."));
    return;
  }
  const kv = (pairs, cls = "") => h("div", { class: `kv ${cls}` }, pairs.flatMap(([k, v]) => [h("div", {}, k), h("div", {}, v ?? "-")]));
  const actions = [];
  if (body.canCancel) {
    const path = `/api/tasks/${enc(body.namespace)}/${enc(body.name)}/cancel`;
    const button = h("button", { class: "cancel", onclick: () => act(path, button, "cancel") }, "Cancel");
    actions.push(button, message(path));
  }
  const entries = body.transcript.map((e) => h("div", { class: `entry kind-${e.kind}${e.ok === false ? " failed" : ""}` },
    h("div", { class: "title" }, `${e.turn !== undefined && e.turn !== null ? `turn ${e.turn} · ` : ""}${e.title}`),
    e.reasoning ? h("div", { class: "text reasoning" }, `thinking: ${e.reasoning}`) : null,
    e.text ? h("div", { class: "text" }, e.text) : null,
    (e.calls || []).map((c) => h("div", { class: "call" }, `${c.name}(${c.arguments})`)),
    e.usage ? h("div", { class: "title" }, `${e.usage.prompt || 0} tokens in, ${e.usage.completion || 0} out`) : null));
  const timeline = h("table", {}, h("tbody", {}, body.timeline.map((m) =>
    h("tr", {}, h("td", { class: "nowrap" }, m.time.replace("T", " ")), h("td", {}, m.what), h("td", {}, m.reason), h("td", {}, m.message)))));
  view.replaceChildren(
    h("div", { class: "task-head" }, h("h2", {}, `${body.namespace}/${body.name}`), badge(body.phase, `tone-${body.tone}`),
      body.verdict ? badge(body.verdict, `tone-${body.tone}`) : null,
      body.dependsOn.length || body.children.length || body.parent
        ? h("a", { href: `#/graph/${enc(body.namespace)}/${enc(body.name)}` }, "graph") : null, actions),
    errors(body),
    h("div", { class: "task-grid" },
      h("div", {},
        kv([["kind", body.kind], ["node", body.node], ["reason", body.reason], ["why pending", body.why || null],
            ["attempts", body.attempts], ["depends on", body.dependsOn.join(", ") || null],
            ["parent", body.parent], ["children", body.children.join(", ") || null],
            ["pull request", body.pullRequest ? h("a", { href: body.pullRequest.url, rel: "noopener noreferrer", target: "_blank" },
              `#${body.pullRequest.number}${body.pullRequest.draft ? " (draft)" : ""}`) : null],
            ["labels", Object.entries(body.labels).map(([k, v]) => `${k}=${v}`).join(", ") || null]]),
        h("h3", {}, "Timeline"), timeline,
        h("h3", {}, `Gates${body.gates ? ` (${body.gates.fixRounds} fix round${body.gates.fixRounds === 1 ? "" : "s"})` : ""}`), body.gates
          ? h("table", { class: "gates" }, h("thead", {}, h("tr", {}, ["gate", "status", "exit", "seconds", "output (last line)"].map((c) => h("th", {}, c)))),
              h("tbody", {}, body.gates.rows.map((g) => h("tr", {}, h("td", {}, g.name), h("td", {}, g.status),
                h("td", {}, g.exitStatus ?? "-"), h("td", {}, g.seconds), h("td", {}, g.last)))))
          : h("p", { class: "empty" }, "none ran"),
        h("h3", {}, "Review"), body.review
          ? kv([["reviewer", body.review.agentRef], ["model", body.review.model], ["verdict", body.review.verdict], ["reasons", body.review.reasons]], "review")
          : h("p", { class: "empty" }, "none"),
        h("h3", {}, "Attempts"), body.attemptHistory.length
          ? h("table", { class: "attempts" }, h("thead", {}, h("tr", {}, ["#", "node", "model", "outcome", "verdict", "tokens", "transcript"].map((c) => h("th", {}, c)))),
              h("tbody", {}, body.attemptHistory.map((a) => h("tr", {}, h("td", {}, a.number), h("td", {}, a.node || "-"), h("td", {}, a.model || "-"),
                h("td", {}, a.outcome || (a.finishedAt ? "-" : "Running")), h("td", {}, a.verdict || "-"),
                h("td", {}, a.usage ? a.usage.totalTokens : "-"), h("td", {}, a.transcriptRef || "-")))))
          : h("p", { class: "empty" }, "none yet"),
        h("h3", {}, "Result envelope"), h("pre", { class: "envelope" }, body.result ? JSON.stringify(body.result, null, 2) : "none yet"),
        h("h3", {}, "Deliveries"), body.deliveries.length
          ? h("table", {}, h("thead", {}, h("tr", {}, ["sink", "state", "attempts", "delivered", "last error"].map((c) => h("th", {}, c)))),
              h("tbody", {}, body.deliveries.map((d) => h("tr", {}, h("td", {}, d.sink), h("td", {}, d.state), h("td", {}, d.attempts),
                h("td", { class: "nowrap" }, d.delivered.replace("T", " ")), h("td", {}, d.last_error)))))
          : h("p", { class: "empty" }, "none (no notify list)"),
        h("h3", {}, "Usage"), body.usage
          ? kv([["tokens", `${body.usage.promptTokens} in, ${body.usage.completionTokens} out (${body.usage.totalTokens})${body.usage.estimated ? " estimated" : ""}`],
                ["turns", body.usage.turns], ["tool calls", body.usage.toolCalls], ["model", body.usage.model]], "usage")
          : h("p", { class: "empty" }, "none")),
      h("div", {},
        h("h3", {}, "Spec"), h("pre", { class: "spec" }, body.spec),
        h("h3", {}, "Transcript"),
        body.hasTranscript ? h("div", { class: "transcript" }, entries) : h("p", { class: "empty" }, "none (only agent tasks have one)"))));
}

// -- schedules -------------------------------------------------------------------------------------------------------

function renderSchedules(body) {
  const cards = body.schedules.map((s) => {
    const triggerPath = `/api/schedules/${enc(s.namespace)}/${enc(s.name)}/trigger`;
    const trigger = s.canTrigger
      ? h("button", { class: "trigger", onclick: (event) => act(triggerPath, event.target, "trigger") }, "Trigger now")
      : null;
    const history = s.history.length
      ? h("table", {}, h("thead", {}, h("tr", {}, ["scheduled", "task", "phase", "verdict", "message"].map((c) => h("th", {}, c)))),
          h("tbody", {}, s.history.map((r) => h("tr", {}, h("td", { class: "nowrap" }, (r.scheduled || "").replace("T", " ")),
            h("td", {}, r.task ? h("a", { href: `#/task/${enc(s.namespace)}/${enc(r.task)}` }, r.task) : "-"),
            h("td", {}, r.phase), h("td", {}, r.verdict || "-"), h("td", {}, r.message || (r.trigger ? `manual (${r.trigger})` : ""))))))
      : h("p", { class: "empty" }, "no runs yet");
    return h("section", { class: "card schedule", "data-schedule": s.name },
      h("h3", {}, `${s.namespace}/${s.name}`, s.suspend ? badge("suspended", "tone-pending") : null),
      h("div", {}, h("code", {}, s.schedule), ` in ${s.timeZone}, ${s.concurrencyPolicy}`, trigger ? [" ", trigger, message(triggerPath)] : null),
      s.error ? h("div", { class: "errors" }, s.error) : null,
      h("h3", {}, "Next fires"),
      h("ul", { class: "next" }, s.next.map((f) => h("li", {}, `${f.local}  (${f.utc})`))),
      h("div", {}, `active: ${s.active.join(", ") || "none"}`),
      h("h3", {}, "Run history"), history);
  });
  view.replaceChildren(h("h2", {}, `Schedules (${body.schedules.length})`), errors(body),
    body.schedules.length ? h("div", { class: "cards wide" }, cards) : h("p", { class: "empty" }, "No TaskSchedules."));
}
