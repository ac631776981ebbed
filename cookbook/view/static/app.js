// cookbook view: the page. Reads the JSON endpoints of cookbook/view/app.py (or, in an exported
// report, the same answers embedded in window.COOKBOOK_EXPORT), draws with plotly.js, and polls
// while it is open so running runs grow in place. State lives in location.hash (tab, runs, step).
"use strict";

const SETTINGS = window.COOKBOOK_SETTINGS || { poll_ms: 2000 };
const EXPORTED = window.COOKBOOK_EXPORT || null;
const DEFAULT_METRICS = ["train/loss", "test/nll", "reward/mean", "dpo/loss", "dpo/accuracy", "distill/reverse_kl"];
const TIME_KEYS = ["step_time_s", "time/step_s"];

const state = {
  tab: "curves",
  index: { sources: [] },
  selected: [],      // run ids overlaid on the curves
  run: null,         // the run of the Run / Episodes / Datums tabs
  compare: null,     // the run whose config the Run tab compares with
  evalId: null,      // the eval or sweep of the Evals tab
  metrics: {},       // run id -> rows
  shownMetrics: null,
  smoothing: 0, logY: false, xAxis: "step", metricFilter: "",
  step: null, rewardMin: "", rewardMax: "", onlyTrained: false, colourBy: "advantage",
  datumOffset: 0, score: null,
  sampleFilter: "all", sampleSearch: "",
  sort: { key: null, desc: false },
  errors: [],
};
const seen = {};  // endpoint -> last answer text, to redraw only on change

// ---------------------------------------------------------------- fetching
function apiUrl(endpoint, params) {
  const query = Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
  return `/api/${endpoint}` + (query ? `?${query}` : "");
}

async function api(endpoint, params) {
  const url = apiUrl(endpoint, params);
  if (EXPORTED) {
    if (url in EXPORTED) return EXPORTED[url];
    return { error: `not included in this export (${url})`, warnings: [] };
  }
  let response;
  try {
    response = await fetch(url, { cache: "no-store" });
  } catch (err) {
    return { error: `the viewer is not reachable (${err.message}); is cookbook view still running?`, warnings: [] };
  }
  let body;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: `${url}: HTTP ${response.status}, not JSON` };
  }
  if (!response.ok && !body.error) body.error = `${url}: HTTP ${response.status}`;
  return body;
}

function changed(key, value) {
  const text = JSON.stringify(value);
  if (seen[key] === text) return false;
  seen[key] = text;
  return true;
}

// ---------------------------------------------------------------- small DOM helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const a = Math.abs(value);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? value.toExponential(3) : value.toFixed(4).replace(/0+$/, "").replace(/\.$/, "");
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function copyButton(text, label) {
  return el("button", { class: "copy", title: text, onclick: async (e) => {
    try { await navigator.clipboard.writeText(text); e.target.textContent = "copied"; }
    catch (err) { window.prompt("Copy:", text); }
  } }, label || "copy");
}

function sources(kind) { return state.index.sources.filter((s) => s.kind === kind); }
function sourceById(id) { return state.index.sources.find((s) => s.id === id); }
function sourceName(id) { const s = sourceById(id); return s ? s.name : id; }

// ---------------------------------------------------------------- state in the URL
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("tab")) state.tab = params.get("tab");
  if (params.has("runs")) state.selected = params.get("runs").split(",").filter(Boolean);
  if (params.get("run")) state.run = params.get("run");
  if (params.get("eval")) state.evalId = params.get("eval");
  if (params.get("step")) state.step = Number(params.get("step"));
  if (params.get("metrics")) state.shownMetrics = params.get("metrics").split(",");
}

function writeHash() {
  const params = new URLSearchParams();
  params.set("tab", state.tab);
  if (state.selected.length) params.set("runs", state.selected.join(","));
  if (state.run) params.set("run", state.run);
  if (state.evalId) params.set("eval", state.evalId);
  if (state.tab === "episodes" && state.step !== null) params.set("step", state.step);
  history.replaceState(null, "", "#" + params.toString());
}

// ---------------------------------------------------------------- warnings and sidebar
function showWarnings() {
  const box = document.getElementById("warnings");
  const lines = [];
  for (const s of state.index.sources) for (const w of s.warnings || []) lines.push(["warn", w]);
  for (const e of state.errors) lines.push(["error", e]);
  box.replaceChildren(...lines.map(([kind, text]) => el("div", { class: kind === "error" ? "error" : "" }, text)));
  box.hidden = lines.length === 0;
}

function renderSidebar() {
  const aside = document.getElementById("sources");
  const runs = sources("run"), evals = sources("eval").filter((s) => !s.in_sweep), sweeps = sources("sweep");
  const parts = [];
  parts.push(el("h3", {}, `Runs (${runs.length})`));
  if (!runs.length) parts.push(el("div", { class: "muted" }, "no run directories found"));
  for (const s of runs) {
    const box = el("input", { type: "checkbox", title: "overlay on the curves", checked: state.selected.includes(s.id),
      onclick: (e) => { e.stopPropagation(); toggleSelected(s.id, e.target.checked); } });
    parts.push(el("div", { class: "src" + (s.id === state.run ? " current" : ""), dataset: { id: s.id },
      title: "show this run in the Run, RL episodes and Datums tabs",
      onclick: () => { state.run = s.id; state.step = null; state.datumOffset = 0; state.score = null;
        if (state.tab === "curves" || state.tab === "evals") state.tab = "run"; render(); } },
      box, s.name, el("span", { class: "meta" }, s.rows ? `${s.rows} rows` : "")));
  }
  if (evals.length) parts.push(el("h3", {}, `Evals (${evals.length})`));
  for (const s of evals) parts.push(el("div", { class: "src" + (s.id === state.evalId ? " current" : ""),
    onclick: () => { state.evalId = s.id; state.tab = "evals"; render(); } }, s.name,
    el("span", { class: "meta" }, s.summary && s.summary.accuracy !== undefined ? fmt(s.summary.accuracy) : "")));
  if (sweeps.length) parts.push(el("h3", {}, `Sweeps (${sweeps.length})`));
  for (const s of sweeps) parts.push(el("div", { class: "src" + (s.id === state.evalId ? " current" : ""),
    onclick: () => { state.evalId = s.id; state.tab = "evals"; render(); } }, s.name));
  aside.replaceChildren(...parts);
}

function toggleSelected(id, on) {
  state.selected = on ? [...new Set([...state.selected, id])] : state.selected.filter((x) => x !== id);
  render();
}

// ---------------------------------------------------------------- curves
async function loadMetrics(id) {
  const have = state.metrics[id] || [];
  const answer = await api("metrics", EXPORTED ? { id, since: 0 } : { id, since: have.length });
  if (answer.error) { state.errors.push(answer.error); return false; }
  if (answer.total < have.length) {  // the file was rewritten (a resume): start over
    state.metrics[id] = [];
    return loadMetrics(id);
  }
  if (!answer.rows.length && state.metrics[id]) return false;
  state.metrics[id] = have.concat(answer.rows);
  return true;
}

function metricKeys() {
  const keys = new Set();
  for (const id of state.selected) for (const row of state.metrics[id] || [])
    for (const [k, v] of Object.entries(row)) if (k !== "step" && typeof v === "number") keys.add(k);
  return [...keys].sort();
}

function defaultMetrics(keys) {
  const chosen = DEFAULT_METRICS.filter((k) => keys.includes(k));
  for (const k of keys) if (/^eval\/.*\/accuracy$/.test(k) || /\/accuracy$/.test(k) && !k.startsWith("test/")) chosen.push(k);
  return [...new Set(chosen.length ? chosen : keys.slice(0, 4))];
}

function xValues(rows) {
  if (state.xAxis === "step") return rows.map((r, i) => (typeof r.step === "number" ? r.step : i));
  let total = 0;
  return rows.map((r) => {
    const key = TIME_KEYS.find((k) => typeof r[k] === "number");
    total += key ? r[key] : 0;
    return total;
  });
}

function smooth(values, weight) {
  if (!weight) return values;
  let last = null, debias = 0;
  return values.map((v) => {
    last = last === null ? v * (1 - weight) : last * weight + v * (1 - weight);
    debias = debias * weight + (1 - weight);
    return last / debias;
  });
}

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function traces(metric) {
  const out = [];
  state.selected.forEach((id, n) => {
    const rows = (state.metrics[id] || []).filter((r) => typeof r[metric] === "number");
    if (!rows.length) return;
    const xs = xValues(state.metrics[id]);
    const x = [], y = [];
    (state.metrics[id] || []).forEach((r, i) => { if (typeof r[metric] === "number") { x.push(xs[i]); y.push(r[metric]); } });
    const colour = COLOURS[n % COLOURS.length], name = sourceName(id);
    const sparse = y.length < 30 || /^eval\/|^test\//.test(metric);
    out.push({ x, y, name, type: "scatter", mode: sparse ? "lines+markers" : "lines", meta: { run: id, raw: true },
      line: { color: colour, width: state.smoothing ? 1 : 2 }, opacity: state.smoothing ? 0.3 : 1,
      showlegend: !state.smoothing, legendgroup: id });
    if (state.smoothing) out.push({ x, y: smooth(y, state.smoothing), name, type: "scatter", mode: "lines",
      meta: { run: id, raw: false }, line: { color: colour, width: 2 }, legendgroup: id });
  });
  return out;
}

function layout(metric) {
  return { title: { text: metric, font: { size: 13 }, x: 0.01, xanchor: "left" }, margin: { l: 55, r: 15, t: 32, b: 38 },
    xaxis: { title: { text: state.xAxis === "step" ? "step" : "time (s, summed step times)" }, zeroline: false },
    yaxis: { type: state.logY ? "log" : "linear", zeroline: false }, legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
    uirevision: metric + state.xAxis + state.logY, hovermode: "closest" };
}

function drawCharts() {
  const box = document.getElementById("charts");
  if (!box) return;
  const keys = metricKeys();
  if (state.shownMetrics === null && keys.length) state.shownMetrics = defaultMetrics(keys);
  const shown = (state.shownMetrics || []).filter((k) => keys.includes(k));
  const picker = document.getElementById("metric-picker");
  const filter = state.metricFilter.toLowerCase();
  picker.replaceChildren(...keys.filter((k) => !filter || k.toLowerCase().includes(filter)).map((k) =>
    el("label", {}, el("input", { type: "checkbox", checked: shown.includes(k), onchange: (e) => {
      state.shownMetrics = e.target.checked ? [...shown, k] : shown.filter((x) => x !== k); drawCharts(); } }), k)));
  for (const node of [...box.children]) if (!shown.includes(node.dataset.metric)) { Plotly.purge(node); node.remove(); }
  if (!state.selected.length) { box.replaceChildren(el("div", { class: "empty" }, "Tick runs on the left to plot them.")); return; }
  if (!shown.length) { box.replaceChildren(el("div", { class: "empty" }, keys.length ? "Pick metrics above." : "No metrics yet (metrics.jsonl is empty).")); return; }
  for (const node of [...box.children]) if (!node.dataset.metric) node.remove();
  for (const metric of shown) {
    let node = [...box.children].find((c) => c.dataset.metric === metric);
    if (!node) { node = el("div", { class: "chart", id: "chart-" + metric, dataset: { metric } }); box.append(node); }
    Plotly.react(node, traces(metric), layout(metric), { displaylogo: false, responsive: true });
  }
}

async function renderCurves(view, fresh) {
  if (fresh) {
    view.replaceChildren(
      el("h2", {}, "Curves"),
      el("div", { class: "controls" },
        el("label", {}, "x", el("select", { id: "x-axis", onchange: (e) => { state.xAxis = e.target.value; drawCharts(); } },
          el("option", { value: "step", selected: state.xAxis === "step" }, "step"),
          el("option", { value: "time", selected: state.xAxis === "time" }, "time"))),
        el("label", {}, "smoothing", el("input", { id: "smoothing", type: "range", min: 0, max: 0.99, step: 0.01, value: state.smoothing,
          oninput: (e) => { state.smoothing = Number(e.target.value); document.getElementById("smoothing-value").textContent = e.target.value; drawCharts(); } }),
          el("span", { id: "smoothing-value" }, String(state.smoothing))),
        el("label", {}, el("input", { id: "log-y", type: "checkbox", checked: state.logY, onchange: (e) => { state.logY = e.target.checked; drawCharts(); } }), "log scale"),
        el("label", {}, "metrics", el("input", { id: "metric-filter", type: "search", placeholder: "filter", value: state.metricFilter,
          oninput: (e) => { state.metricFilter = e.target.value; drawCharts(); } }))),
      el("div", { id: "metric-picker", class: "metric-picker" }),
      el("div", { id: "charts", class: "charts" }));
  }
  const loaded = await Promise.all(state.selected.map((id) => loadMetrics(id)));
  if (fresh || loaded.some(Boolean)) drawCharts();
}

// ---------------------------------------------------------------- run
function flatten(value, prefix, out) {
  out = out || {};
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = value;
  return out;
}

function kvTable(obj, cls) {
  return el("table", { class: cls || "" }, Object.entries(obj).map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, fmt(v)))));
}

function stale(tab, run) { return state.tab !== tab || (run !== undefined && state.run !== run); }

async function renderRun(view) {
  if (!state.run) { view.replaceChildren(el("div", { class: "empty" }, "Pick a run on the left.")); return; }
  const run = state.run;
  const info = await api("run", { id: run });
  const other = state.compare && state.compare !== run ? await api("run", { id: state.compare }) : null;
  if (stale("run", run)) return;
  if (!changed("run", [info, other]) && view.dataset.tab === "run") return;
  if (info.error) { view.replaceChildren(el("div", { class: "empty" }, info.error)); return; }
  const parts = [el("h2", {}, `Run ${info.name}`)];
  if (Object.keys(info.summary || {}).length) parts.push(el("h4", {}, "Summary"), kvTable(flatten(info.summary), "summary"));
  parts.push(el("h4", {}, `Checkpoints (${info.checkpoints.length})`));
  if (info.checkpoints.length) {
    parts.push(el("table", { class: "checkpoints" },
      el("tr", {}, ["name", "step", "state_path (resumable)", "sampler_path", "final"].map((h) => el("th", {}, h))),
      info.checkpoints.map((c) => el("tr", {},
        el("td", {}, c.name), el("td", { class: "num" }, fmt(c.step)),
        el("td", {}, c.state_path ? [el("code", {}, c.state_path), copyButton(c.state_path), copyButton(`load_checkpoint_path=${c.state_path}`, "copy as option")] : ""),
        el("td", {}, c.sampler_path ? [el("code", {}, c.sampler_path), copyButton(c.sampler_path)] : ""),
        el("td", {}, c.final ? "yes" : "")))));
  } else parts.push(el("div", { class: "muted" }, "none yet"));
  const runs = sources("run").filter((s) => s.id !== state.run);
  const select = el("select", { id: "compare", onchange: (e) => { state.compare = e.target.value || null; renderRun(view); } },
    el("option", { value: "" }, "(none)"), runs.map((s) => el("option", { value: s.id, selected: s.id === state.compare }, s.name)));
  parts.push(el("h4", {}, "Config ", el("span", { class: "muted" }, " compare with "), select));
  const mine = flatten(info.config || {});
  if (other && !other.error) {
    const theirs = flatten(other.config || {});
    const keys = [...new Set([...Object.keys(mine), ...Object.keys(theirs)])].sort();
    const differing = keys.filter((k) => JSON.stringify(mine[k] ?? null) !== JSON.stringify(theirs[k] ?? null));
    parts.push(el("div", { class: "muted" }, `${differing.length} of ${keys.length} keys differ`),
      el("table", { class: "config-diff" }, el("tr", {}, el("th", {}, "key"), el("th", {}, info.name), el("th", {}, other.name)),
        differing.map((k) => el("tr", { class: "diff" }, el("th", {}, k), el("td", {}, fmt(mine[k])), el("td", {}, fmt(theirs[k]))))));
  } else parts.push(kvTable(mine, "config"));
  parts.push(el("h4", {}, "Files"), el("div", {}, info.files.map((f) => EXPORTED ? el("span", {}, f + "  ")
    : el("a", { href: apiUrl("file", { id: state.run, path: f }), target: "_blank", style: "margin-right:10px" }, f))));
  if (info.log_tail.length) parts.push(el("h4", {}, "log.txt (last lines)"), el("pre", {}, info.log_tail.join("\n")));
  view.replaceChildren(...parts);
}

// ---------------------------------------------------------------- RL episodes
function tokenSpan(text, colour, title) {
  const span = el("span", { class: "tok" + (text.includes("\n") ? " nl" : ""), title }, text);
  if (colour) span.style.background = colour;
  return span;
}

function advantageColour(a, scale) {
  if (!a || !scale) return "";
  const alpha = Math.min(1, Math.abs(a) / scale) * 0.75 + 0.1;
  return a > 0 ? `rgba(34,160,80,${alpha})` : `rgba(210,50,50,${alpha})`;
}

function logprobColour(lp) {
  if (typeof lp !== "number") return "";
  return `rgba(240,140,20,${Math.min(1, -lp / 8) * 0.8})`;
}

async function renderEpisodes(view) {
  if (!state.run) { view.replaceChildren(el("div", { class: "empty" }, "Pick an RL run on the left.")); return; }
  const run = state.run;
  const list = await api("episodes", { id: run });
  if (stale("episodes", run)) return;
  if (list.error) { view.replaceChildren(el("div", { class: "empty" }, list.error)); return; }
  const steps = list.steps || [];
  if (!steps.length) {
    view.replaceChildren(el("h2", {}, `RL episodes of ${sourceName(state.run)}`),
      el("div", { class: "empty" }, "No episodes.jsonl in this run (RL and on-policy distillation runs write one)."));
    return;
  }
  if (state.step === null || !steps.some((s) => s.step === state.step)) state.step = steps[steps.length - 1].step;
  const record = await api("episodes/step", { id: run, step: state.step });
  if (stale("episodes", run)) return;
  const key = [steps, record, state.rewardMin, state.rewardMax, state.onlyTrained, state.colourBy];
  if (!changed("episodes", key) && view.dataset.tab === "episodes") return;
  writeHash();
  const stepSelect = el("select", { id: "step-select", onchange: (e) => { state.step = Number(e.target.value); renderEpisodes(view); } },
    steps.map((s) => el("option", { value: s.step, selected: s.step === state.step },
      `step ${s.step} · ${s.episodes} episodes · mean reward ${fmt(s.reward_mean)}`)));
  const move = (d) => { const i = steps.findIndex((s) => s.step === state.step) + d;
    if (i >= 0 && i < steps.length) { state.step = steps[i].step; renderEpisodes(view); } };
  const controls = el("div", { class: "controls" },
    el("button", { onclick: () => move(-1) }, "◀"), stepSelect, el("button", { onclick: () => move(1) }, "▶"),
    el("label", {}, "reward ≥", el("input", { id: "reward-min", type: "number", step: "any", style: "width:70px", value: state.rewardMin,
      onchange: (e) => { state.rewardMin = e.target.value; renderEpisodes(view); } })),
    el("label", {}, "≤", el("input", { id: "reward-max", type: "number", step: "any", style: "width:70px", value: state.rewardMax,
      onchange: (e) => { state.rewardMax = e.target.value; renderEpisodes(view); } })),
    el("label", {}, el("input", { type: "checkbox", checked: state.onlyTrained, onchange: (e) => { state.onlyTrained = e.target.checked; renderEpisodes(view); } }), "only trained groups"),
    el("label", {}, "colour tokens by", el("select", { id: "colour-by", onchange: (e) => { state.colourBy = e.target.value; renderEpisodes(view); } },
      el("option", { value: "advantage", selected: state.colourBy === "advantage" }, "advantage"),
      el("option", { value: "logprob", selected: state.colourBy === "logprob" }, "sampler logprob"))));
  const parts = [el("h2", {}, `RL episodes of ${sourceName(state.run)}`), controls];
  if (record.error) { parts.push(el("div", { class: "empty" }, record.error)); view.replaceChildren(...parts); return; }
  const lo = state.rewardMin === "" ? -Infinity : Number(state.rewardMin);
  const hi = state.rewardMax === "" ? Infinity : Number(state.rewardMax);
  const groups = (record.groups || []).filter((g) => !state.onlyTrained || g.trained);
  const scale = Math.max(1e-9, ...groups.flatMap((g) => (g.episodes || []).map((e) => Math.abs(e.advantage || 0))));
  let shown = 0;
  for (const g of groups) {
    const episodes = (g.episodes || []).map((e, i) => ({ ...e, i })).filter((e) => e.reward >= lo && e.reward <= hi);
    shown += episodes.length;
    const first = ((g.episodes || [])[0] || {}).turns || [];
    const card = el("div", { class: "card group", dataset: { group: g.group } },
      el("h4", {}, `group ${g.group} · ${g.name} `, g.trained ? el("span", { class: "tag good" }, "trained")
        : el("span", { class: "tag", title: "all rewards equal: no advantage, dropped from the batch" }, "not trained (constant rewards)"),
        el("span", { class: "muted" }, `  ${episodes.length} of ${(g.episodes || []).length} episodes shown`)),
      first.length ? el("pre", { class: "prompt" }, first[0].prompt) : null,
      el("div", { class: "episode head" }, el("b", {}, "reward"), el("b", {}, "advantage"), el("b", {}, "reply (tokens coloured by " + state.colourBy + ")")));
    for (const e of episodes) {
      const turns = (e.turns || []).map((t, n) => el("div", {},
        n > 0 ? el("div", { class: "toks prompt" }, t.prompt) : null,
        el("div", { class: "toks" }, (t.tokens || []).map((tok, j) => {
          const lp = (t.logprobs || [])[j];
          const colour = state.colourBy === "advantage" ? advantageColour(e.advantage, scale) : logprobColour(lp);
          return tokenSpan(tok, colour, `token ${JSON.stringify(tok)} · logprob ${fmt(lp)} · advantage ${fmt(e.advantage)}`);
        })),
        el("div", { class: "muted" }, `turn ${n}: reward ${fmt(t.reward)} · ${t.stop_reason}`, t.log ? ` · ${t.log}` : "",
          Object.keys(t.metrics || {}).length ? ` · ${Object.entries(t.metrics).map(([k, v]) => `${k}=${fmt(v)}`).join(" ")}` : "")));
      card.append(el("div", { class: "episode", dataset: { episode: e.i, reward: e.reward } },
        el("span", { class: "reward" }, fmt(e.reward)), el("span", { class: "advantage" }, fmt(e.advantage)), el("div", {}, turns)));
    }
    parts.push(card);
  }
  parts.splice(2, 0, el("div", { class: "muted", id: "episode-count" }, `${shown} episodes shown`));
  view.replaceChildren(...parts);
}

// ---------------------------------------------------------------- datums
function datumTokens(side) {
  const n = (side.weights || []).filter((w) => w > 0).length;
  return el("div", {}, el("div", { class: "muted" }, `${n} of ${side.tokens.length} tokens trained on`),
    el("div", { class: "toks datum" }, side.tokens.map((t, i) => el("span", {
      class: "tok" + (side.weights[i] > 0 ? " w" : "") + (t.includes("\n") ? " nl" : ""), dataset: { i },
      title: `token ${JSON.stringify(t)} (id ${side.ids ? side.ids[i] : "?"}) · weight ${side.weights[i]}` }, t))));
}

async function renderDatums(view) {
  if (!state.run) { view.replaceChildren(el("div", { class: "empty" }, "Pick an SFT or DPO run on the left.")); return; }
  const params = { id: state.run, offset: state.datumOffset, count: 10 };
  if (state.score) params.score = state.score;
  const key = JSON.stringify(params);
  if (view.dataset.tab === "datums" && view.dataset.key === key) return;  // datums do not change while a run goes
  view.dataset.key = key;
  view.replaceChildren(el("h2", {}, `Datums of ${sourceName(state.run)}`), el("div", { class: "empty" },
    state.score ? "Scoring with the checkpoint (loading the model)…" : "Rendering…"));
  const d = await api("datums", params);
  if (stale("datums", params.id) || view.dataset.key !== key) return;
  const parts = [el("h2", {}, `Datums of ${sourceName(state.run)}`)];
  if (d.error || !d.kind) {
    parts.push(el("div", { class: "empty" }, d.error || d.message));
    view.replaceChildren(...parts);
    return;
  }
  const page = (delta) => { state.datumOffset = Math.max(0, state.datumOffset + delta); renderDatums(view); };
  const controls = el("div", { class: "controls" },
    el("button", { onclick: () => page(-10) }, "◀"), `examples ${d.offset}–${d.offset + d.items.length - 1} of ${d.total}`,
    el("button", { onclick: () => page(10) }, "▶"),
    el("span", { class: "legend" }, el("span", { class: "sw", style: "background:#b9efc8;outline:1px solid #7fd49a" }), "trained on (weight > 0)",
      el("span", { class: "sw", style: "background:#fff;outline:1px solid #ccc" }), "context (weight 0)"),
    el("span", { class: "muted" }, `renderer ${d.renderer} · ${d.base_model} · ${d.source}` + (d.train_on_what ? ` · ${d.train_on_what}` : "")));
  if (d.kind === "dpo" && !EXPORTED) {
    const pick = el("select", { id: "score-checkpoint" }, (d.checkpoints || []).map((c) => el("option", { value: c, selected: c === state.score }, c)));
    controls.append(el("label", {}, "implicit rewards at", pick),
      el("button", { id: "score", onclick: () => { state.score = pick.value; renderDatums(view); } }, "score (loads the model)"));
  }
  parts.push(controls);
  if (d.scored_with) parts.push(el("div", { class: "muted" },
    `implicit reward = β·(log p_policy − log p_reference) of each completion; policy ${d.scored_with.checkpoint} (${d.scored_with.path}), reference ${d.scored_with.reference}, β ${fmt(d.scored_with.beta)}`));
  for (const item of d.items) {
    if (d.kind === "sft") {
      parts.push(el("div", { class: "card datum", dataset: { index: item.index } }, el("h4", {}, `example ${item.index}`),
        item.tokens.length ? datumTokens(item) : el("div", { class: "muted" }, "no trained token survives truncation (dropped)")));
    } else {
      const rewards = item.chosen_reward !== undefined
        ? el("div", { class: "rewards", dataset: { chosen: item.chosen_reward, rejected: item.rejected_reward } }, `chosen reward ${fmt(item.chosen_reward)} · rejected reward ${fmt(item.rejected_reward)} · margin `,
          el("span", { class: item.margin > 0 ? "correct" : "wrong" }, fmt(item.margin))) : null;
      parts.push(el("div", { class: "card comparison", dataset: { index: item.index } }, el("h4", {}, `comparison ${item.index}`), rewards,
        item.dropped ? el("div", { class: "muted" }, item.dropped) : el("div", { class: "pair" },
          el("div", { class: "chosen" }, el("b", {}, "chosen"), datumTokens(item.chosen)),
          el("div", { class: "rejected" }, el("b", {}, "rejected"), datumTokens(item.rejected)))));
    }
  }
  view.replaceChildren(...parts);
}

// ---------------------------------------------------------------- evals and sweeps
function lastUser(prompt) {
  if (!Array.isArray(prompt)) return fmt(prompt);
  const users = prompt.filter((m) => m.role === "user");
  const m = users.length ? users[users.length - 1] : prompt[prompt.length - 1];
  return m ? (typeof m.content === "string" ? m.content : JSON.stringify(m.content)) : "";
}

async function renderEvals(view) {
  const all = [...sources("sweep"), ...sources("eval")];
  if (!all.length) { view.replaceChildren(el("div", { class: "empty" }, "No eval or sweep directories found.")); return; }
  if (!state.evalId || !sourceById(state.evalId)) state.evalId = all[0].id;
  const current = sourceById(state.evalId);
  const evalId = state.evalId;
  const answer = await api(current.kind === "sweep" ? "sweep" : "eval", { id: evalId });
  if (stale("evals") || state.evalId !== evalId) return;
  if (!changed("evals", [answer, state.sampleFilter, state.sampleSearch, state.sort]) && view.dataset.tab === "evals") return;
  writeHash();
  const picker = el("select", { id: "eval-select", onchange: (e) => { state.evalId = e.target.value; state.sort = { key: null, desc: false }; renderEvals(view); } },
    all.map((s) => el("option", { value: s.id, selected: s.id === state.evalId },
      `${s.kind === "sweep" ? "sweep" : "eval"}: ${s.name}` + (s.summary && s.summary.accuracy !== undefined ? ` (${fmt(s.summary.accuracy)})` : ""))));
  const parts = [el("h2", {}, "Evals & sweeps"), el("div", { class: "controls" }, picker)];
  if (answer.error) parts.push(el("div", { class: "empty" }, answer.error));
  else if (current.kind === "sweep") renderSweep(answer, parts, view);
  else renderEval(answer, parts, view);
  view.replaceChildren(...parts);
  const plot = document.getElementById("sweep-plot");
  if (plot) Plotly.react(plot, plot._traces, plot._layout, { displaylogo: false, responsive: true });
}

function renderEval(answer, parts, view) {
  const s = answer.summary || {};
  const summary = {};
  for (const k of ["benchmark", "model", "checkpoint", "accuracy", "stderr", "examples", "samples", "truncation_rate", "completion_tokens_mean"])
    if (s[k] !== undefined) summary[k] = s[k];
  for (const k of Object.keys(s)) if (k.startsWith("pass@")) summary[k] = s[k];
  parts.push(el("h4", {}, answer.name), kvTable(summary, "summary"));
  const search = state.sampleSearch.toLowerCase();
  const rows = answer.samples.filter((r) => (state.sampleFilter === "all" || (state.sampleFilter === "correct") === Boolean(r.correct))
    && (!search || JSON.stringify(r).toLowerCase().includes(search)));
  parts.push(el("div", { class: "controls" },
    el("label", {}, "show", el("select", { id: "sample-filter", onchange: (e) => { state.sampleFilter = e.target.value; renderEvals(view); } },
      ["all", "correct", "wrong"].map((v) => el("option", { value: v, selected: v === state.sampleFilter }, v)))),
    el("label", {}, "search", el("input", { type: "search", value: state.sampleSearch, onchange: (e) => { state.sampleSearch = e.target.value; renderEvals(view); } })),
    el("span", { class: "muted" }, `${rows.length} of ${answer.samples.length} samples`)));
  parts.push(el("table", { class: "samples" },
    el("tr", {}, ["id", "sample", "question", "reference", "response", "extracted", "grade", "score"].map((h) => el("th", {}, h))),
    rows.map((r) => el("tr", { class: "sample", dataset: { correct: Boolean(r.correct) } },
      el("td", {}, fmt(r.id)), el("td", { class: "num" }, fmt(r.sample)), el("td", { class: "resp" }, lastUser(r.prompt)),
      el("td", {}, fmt(r.reference)), el("td", { class: "resp" }, fmt(r.response)), el("td", {}, fmt(r.extracted)),
      el("td", { class: r.correct ? "correct" : "wrong" }, r.correct ? "✓ correct" : (r.finished === false ? "✗ cut off" : "✗ wrong")),
      el("td", { class: "num" }, fmt(r.score))))));
}

function renderSweep(answer, parts, view) {
  const fixed = ["run", "checkpoint", "step"];
  const columns = [...fixed, ...answer.benchmarks];
  const rows = [...answer.rows];
  if (state.sort.key) {
    const k = state.sort.key, sign = state.sort.desc ? -1 : 1;
    rows.sort((a, b) => {
      const x = a[k], y = b[k];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sign;
    });
  }
  const header = el("tr", {}, columns.map((c) => el("th", {
    class: "sortable" + (state.sort.key === c ? (state.sort.desc ? " sorted-desc" : " sorted-asc") : ""), dataset: { key: c },
    title: "sort", onclick: () => { state.sort = { key: c, desc: state.sort.key === c ? !state.sort.desc : false }; renderEvals(view); } }, c)));
  parts.push(el("h4", {}, `${answer.name}: ${answer.rows.length} checkpoints × ${answer.benchmarks.length} benchmarks`),
    el("div", { class: "muted" }, "accuracy ± standard error; click a header to sort, a score to see its samples"),
    el("table", { class: "sweep" }, header, rows.map((r) => el("tr", { class: "sweep-row" },
      fixed.map((c) => el("td", { class: c === "step" ? "num" : "", title: c === "checkpoint" ? r.path : null }, fmt(r[c]))),
      answer.benchmarks.map((b) => {
        const cell = answer.cells[`${r.path}|${b}`];
        const text = r[b] === null || r[b] === undefined ? "–" : fmt(r[b]) + (r[`${b}_stderr`] !== null && r[`${b}_stderr`] !== undefined ? ` ± ${fmt(r[`${b}_stderr`])}` : "");
        return el("td", { class: "num" }, cell ? el("a", { href: "#", onclick: (e) => { e.preventDefault(); state.evalId = cell; renderEvals(view); } }, text) : text);
      })))));
  const plot = el("div", { id: "sweep-plot", class: "chart", style: "max-width:760px;margin-top:10px" });
  plot._traces = [];
  for (const b of answer.benchmarks) {
    const byRun = {};
    for (const r of answer.rows) (byRun[r.run] = byRun[r.run] || []).push(r);
    for (const [run, rs] of Object.entries(byRun)) {
      const pts = rs.filter((r) => typeof r[b] === "number").sort((a, c) => (a.step ?? 0) - (c.step ?? 0));
      plot._traces.push({ x: pts.map((r, i) => (typeof r.step === "number" ? r.step : i)), y: pts.map((r) => r[b]),
        error_y: { type: "data", array: pts.map((r) => r[`${b}_stderr`] || 0), visible: true },
        text: pts.map((r) => r.checkpoint), name: `${run}: ${b}`, type: "scatter", mode: "lines+markers" });
    }
  }
  plot._layout = { title: { text: "accuracy against training step", font: { size: 13 } }, margin: { l: 50, r: 15, t: 32, b: 40 },
    xaxis: { title: { text: "step" } }, yaxis: { title: { text: "accuracy" }, rangemode: "tozero" }, legend: { orientation: "h", y: -0.2 } };
  parts.push(plot);
  if (answer.plot && !EXPORTED) parts.push(el("div", {}, el("a", { href: apiUrl("file", { id: answer.id, path: answer.plot }), target: "_blank" }, "results.png (cookbook sweep's plot)")));
}

// ---------------------------------------------------------------- the loop
const RENDERERS = { curves: renderCurves, run: renderRun, episodes: renderEpisodes, datums: renderDatums, evals: renderEvals };
let busy = false, pending = false;

async function refreshIndex() {
  const index = await api("index");
  if (index.error) { state.errors = [index.error]; return; }
  state.errors = [];
  state.index = index;
  const runs = sources("run").map((s) => s.id);
  state.selected = state.selected.filter((id) => runs.includes(id));
  if (!state.selected.length && !refreshIndex.done) state.selected = runs.slice(0, 8);
  if (!state.run || !runs.includes(state.run)) state.run = runs[0] || null;
  refreshIndex.done = true;
}

async function render() {
  if (busy) { pending = true; return; }
  busy = true;
  try {
    await refreshIndex();
    for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === state.tab);
    renderSidebar();
    const view = document.getElementById("view");
    const tab = state.tab;
    const fresh = view.dataset.tab !== tab;
    if (fresh) { for (const k of Object.keys(seen)) delete seen[k]; delete view.dataset.key; }
    await RENDERERS[tab](view, fresh);
    view.dataset.tab = tab;
    writeHash();
    showWarnings();
    document.getElementById("status").textContent = EXPORTED ? `exported report · ${EXPORTED._created || ""}`
      : `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    state.errors.push(`${err.name}: ${err.message}`);
    showWarnings();
  } finally {
    busy = false;
    if (pending) { pending = false; render(); }
  }
}

function start() {
  readHash();
  for (const a of document.querySelectorAll("#tabs a")) a.addEventListener("click", (e) => {
    e.preventDefault();
    state.tab = a.dataset.tab;
    render();
  });
  window.addEventListener("hashchange", () => { readHash(); render(); });
  render();
  if (!EXPORTED) setInterval(render, SETTINGS.poll_ms);
}

start();
