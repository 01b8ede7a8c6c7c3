// The cellstream dashboard: live figures from GET /v1/stats, predictions from the /subscribe
// socket, charts with uPlot served by the same server. Plain browser ESM, no build step.
import uPlot from '/vendor/uPlot.esm.js';

const STATS_EVERY_MS = 1000;
const RENDER_EVERY_MS = 500;
const HISTORY_SECONDS = 180;
const POINTS_PER_KEY = 240;
const MAX_TRACKED_KEYS = 2000;
const MAX_CHARTS = 4;
const LIST_LENGTH = 25;
const COLORS = ['#4fb3ff', '#ffb454', '#3ecf8e', '#ff6b9a', '#b48cff', '#f7e463', '#5fd7d7', '#ff8f5e'];

// A token for servers that require one: open the page as /#token=SECRET.
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const $ = (id) => document.getElementById(id);

/**
 * key → { activity, seq: number[], series: number[][], names: string[], unit, last }, least recent
 * first. Per-key charts plot against the step (`seq`), not event time: event times may be years
 * apart (the demo feed replays two years of visits in minutes), steps are always one apart.
 */
const keys = new Map();
const picked = new Set();
const charts = new Map();
let seen = 0;
let dropped = 0;
let prefix = '';
let socket;

function connect() {
  const query = new URLSearchParams();
  if (prefix) query.set('prefix', prefix);
  if (token) query.set('access_token', token);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/subscribe?${query}`);
  socket = ws;
  setStatus('connecting');
  ws.onopen = () => setStatus('live');
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (typeof msg.dropped === 'number') dropped += msg.dropped;
    else if (typeof msg.key === 'string') record(msg);
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    setStatus(
      'closed',
      e.code === 1006 ? 'disconnected' : `closed ${e.code}${e.reason ? `: ${e.reason}` : ''}`,
    );
    setTimeout(connect, 2000);
  };
}

function setStatus(state, text = state) {
  const el = $('status');
  el.dataset.state = state;
  el.textContent = text;
}

function record(p) {
  seen++;
  let entry = keys.get(p.key);
  if (entry) keys.delete(p.key);
  else entry = { activity: 0, seq: [], series: [], names: [], unit: '', last: undefined };
  keys.set(p.key, entry);
  if (keys.size > MAX_TRACKED_KEYS) keys.delete(keys.keys().next().value);

  const values = valuesOf(p);
  // A step at or before the last one plotted starts a new sequence (a reset, or the key's state
  // expired): its chart starts again rather than drawing back over the old one.
  const lastSeq = entry.seq.at(-1);
  if (values.names.join() !== entry.names.join() || (lastSeq !== undefined && p.seq <= lastSeq)) {
    entry.seq = [];
    entry.series = [];
  }
  entry.names = values.names;
  entry.unit = values.unit;
  entry.activity += 1;
  entry.last = p;
  entry.seq.push(p.seq);
  values.values.forEach((v, i) => {
    entry.series[i] ??= new Array(entry.seq.length - 1).fill(null);
    entry.series[i].push(v);
  });
  if (entry.seq.length > POINTS_PER_KEY) {
    entry.seq.shift();
    for (const s of entry.series) s.shift();
  }
}

/** A prediction's own fields; every other field was decoded from `output` by the feature spec. */
const PREDICTION_FIELDS = new Set(['key', 'ts', 'seq', 'model', 'output', 'redelivered', 'label']);
const isNumbers = (v) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');

/**
 * What to chart for a prediction, and the y axis's label: what the model's feature spec decoded —
 * class probabilities, or a regression's value in its own units (`next_interval_days`) — and the
 * raw `output` only for a model that decodes nothing.
 */
function valuesOf(p) {
  const probs = p.probabilities;
  if (probs && typeof probs === 'object' && !Array.isArray(probs)) {
    const names = Object.keys(probs).slice(0, COLORS.length);
    return { names, values: names.map((n) => probs[n]), unit: 'probability' };
  }
  for (const [field, value] of Object.entries(p)) {
    if (PREDICTION_FIELDS.has(field)) continue;
    if (typeof value === 'number') return { names: [field], values: [value], unit: field };
    if (isNumbers(value)) {
      const values = value.slice(0, COLORS.length);
      return { names: values.map((_, i) => `${field}[${i}]`), values, unit: field };
    }
  }
  const out = Array.isArray(p.output) ? p.output.slice(0, COLORS.length) : [];
  const names = out.map((_, i) => (out.length === 1 ? 'output' : `output[${i}]`));
  return { names, values: out, unit: 'raw output (no feature spec)' };
}

function mostActive() {
  return [...keys.entries()].sort((a, b) => b[1].activity - a[1].activity).slice(0, LIST_LENGTH);
}

function shownKeys() {
  const chosen = [...picked].filter((k) => keys.has(k));
  if (chosen.length > 0) return chosen.slice(0, MAX_CHARTS);
  return mostActive()
    .slice(0, 3)
    .map(([k]) => k);
}

function renderList() {
  const list = $('key-list');
  const items = mostActive();
  list.replaceChildren(
    ...items.map(([key, entry]) => {
      const li = document.createElement('li');
      li.dataset.key = key;
      if (picked.has(key)) li.classList.add('selected');
      const name = document.createElement('span');
      name.textContent = key;
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = `seq ${entry.last.seq}`;
      li.append(name, count);
      li.onclick = () => {
        if (picked.has(key)) picked.delete(key);
        else if (picked.size < MAX_CHARTS) picked.add(key);
        render();
      };
      return li;
    }),
  );
  // Activity decays, so "most active" means recently active.
  for (const entry of keys.values()) entry.activity *= 0.9;
}

function renderKeyCharts() {
  const wanted = shownKeys();
  for (const [key, chart] of charts) {
    if (!wanted.includes(key)) {
      chart.plot.destroy();
      chart.box.remove();
      charts.delete(key);
    }
  }
  const container = $('key-charts');
  for (const key of wanted) {
    const entry = keys.get(key);
    let chart = charts.get(key);
    if (chart && chart.names.join() !== entry.names.join()) {
      chart.plot.destroy();
      chart.box.remove();
      charts.delete(key);
      chart = undefined;
    }
    if (!chart) {
      const box = document.createElement('div');
      box.className = 'key-chart';
      box.dataset.key = key;
      const title = document.createElement('h3');
      title.textContent = key;
      const last = document.createElement('div');
      last.className = 'last';
      const plotEl = document.createElement('div');
      plotEl.className = 'chart';
      // The axes' titles in words too (uPlot draws its own on the canvas).
      const axes = document.createElement('div');
      axes.className = 'axes';
      axes.textContent = `${entry.unit} by step (seq) of the key's sequence`;
      box.append(title, last, plotEl, axes);
      container.append(box);
      const plot = new uPlot(
        chartOptions(
          plotEl,
          entry.names.map((n, i) => ({
            label: n,
            stroke: COLORS[i],
            width: 2,
            points: { show: true, size: 5 },
          })),
          220,
          { x: 'step (seq)', y: entry.unit },
        ),
        [entry.seq, ...entry.series],
        plotEl,
      );
      fitWidth(plot, plotEl, 220);
      chart = { box, plot, names: entry.names, last, plotEl };
      charts.set(key, chart);
    } else {
      chart.plot.setData([entry.seq, ...entry.series]);
    }
    chart.plotEl.dataset.points = String(entry.seq.length);
    chart.plotEl.dataset.unit = entry.unit;
    chart.plotEl.dataset.lastSeq = String(entry.seq.at(-1));
    chart.plotEl.dataset.lastValue = String(entry.series[0]?.at(-1));
    const p = entry.last;
    const value = entry.series.length === 1 ? ` · ${entry.names[0]} ${fmt(entry.series[0].at(-1))}` : '';
    const label = p.label !== undefined ? ` · ${p.label}` : '';
    chart.last.textContent = `seq ${p.seq} · event time ${new Date(p.ts).toISOString().slice(0, 16).replace('T', ' ')}${value}${label} · ${p.model}`;
  }
}

/**
 * Keeps a plot as wide as its box: a chart is created before the grid around it settles (a
 * second chart halves the first one's column), and uPlot does not resize by itself.
 */
function fitWidth(plot, el, height) {
  new ResizeObserver(() => {
    const width = Math.max(300, el.clientWidth);
    if (Math.abs(width - plot.width) > 1) plot.setSize({ width, height });
  }).observe(el);
}

/** uPlot options; `labels` (x and y axis titles) makes the x axis plain numbers instead of time. */
function chartOptions(el, series, height, labels) {
  const axis = { stroke: '#7d8a99', grid: { stroke: '#232c36' }, ticks: { stroke: '#232c36' } };
  return {
    width: Math.max(300, el.clientWidth || el.parentElement.clientWidth - 20),
    height,
    scales: { x: { time: !labels } },
    axes: labels
      ? [
          { ...axis, label: labels.x, labelSize: 20 },
          { ...axis, label: labels.y, labelSize: 20, size: 60 },
        ]
      : [axis, axis],
    series: [labels ? { label: 'seq' } : {}, ...series],
  };
}

// Throughput and latency history, one point per stats poll.
const history = { t: [], events: [], predictions: [], p50: [], p95: [] };
let throughputPlot;
let latencyPlot;

function initSystemCharts() {
  const tEl = $('throughput-chart');
  throughputPlot = new uPlot(
    chartOptions(
      tEl,
      [
        { label: 'events/s', stroke: COLORS[0], width: 2 },
        { label: 'predictions/s', stroke: COLORS[2], width: 2, dash: [6, 4] },
      ],
      200,
    ),
    [history.t, history.events, history.predictions],
    tEl,
  );
  const lEl = $('latency-chart');
  latencyPlot = new uPlot(
    chartOptions(
      lEl,
      [
        { label: 'p50 ms', stroke: COLORS[1], width: 2 },
        { label: 'p95 ms', stroke: COLORS[3], width: 2 },
      ],
      200,
    ),
    [history.t, history.p50, history.p95],
    lEl,
  );
  fitWidth(throughputPlot, tEl, 200);
  fitWidth(latencyPlot, lEl, 200);
}

async function pollStats() {
  try {
    const res = await fetch('/v1/stats', { cache: 'no-store' });
    if (!res.ok) return;
    const s = await res.json();
    $('model').textContent = s.model;
    $('events-rate').textContent = fmt(s.eventsPerSecond);
    $('predictions-rate').textContent = fmt(s.predictionsPerSecond);
    $('latency').textContent = s.latencyMs ? `${fmt(s.latencyMs.p50)} / ${fmt(s.latencyMs.p95)} ms` : '–';
    $('batch').textContent = s.batch ? `${fmt(s.batch.ms.p50)} ms · ${fmt(s.batch.eventsPerBatch)}` : '–';
    $('keys').textContent = String(s.keys);
    $('subscribers').textContent = String(s.subscribers);
    if (s.kafka) renderKafka(s.kafka);
    if (s.models) renderModels(s.models);
    history.t.push(Date.now() / 1000);
    history.events.push(s.eventsPerSecond);
    history.predictions.push(s.predictionsPerSecond);
    history.p50.push(s.latencyMs ? s.latencyMs.p50 : null);
    history.p95.push(s.latencyMs ? s.latencyMs.p95 : null);
    if (history.t.length > HISTORY_SECONDS) for (const a of Object.values(history)) a.shift();
    throughputPlot.setData([history.t, history.events, history.predictions]);
    latencyPlot.setData([history.t, history.p50, history.p95]);
    $('throughput-chart').dataset.points = String(history.t.length);
    $('latency-chart').dataset.points = String(history.t.length);
  } catch {
    // The server may be restarting; the next poll tries again.
  }
}

/** The models panel (serve with shadows): roles, step times, and each pair's divergence. */
function renderModels(m) {
  $('models-panel').hidden = false;
  const cell = (text) => {
    const td = document.createElement('td');
    td.textContent = text;
    return td;
  };
  const row = (cells) => {
    const tr = document.createElement('tr');
    for (const c of cells) tr.append(cell(c));
    return tr;
  };
  $('models-roles').replaceChildren(
    ...m.roles.map((r) => {
      const step = m.stepMs[r.label];
      return row([r.label, r.role, step ? `${fmt(step.mean)} · ${fmt(step.last)}` : '–']);
    }),
  );
  $('models-divergence').replaceChildren(
    ...m.divergence.map((d) =>
      row([
        d.primary,
        d.shadow,
        String(d.events),
        d.meanAbsDiff.toPrecision(3),
        d.maxAbsDiff.toPrecision(3),
        d.labelAgreement === undefined || d.labelAgreement === null
          ? '–'
          : `${fmt(d.labelAgreement * 100)} %`,
      ]),
    ),
  );
}

/** The Kafka panel (serve in Kafka mode): readiness and why not, lag, progress, crashes, restores. */
function renderKafka(k) {
  $('kafka-panel').hidden = false;
  const state = k.ready ? 'ready' : k.stalled ? 'stalled' : 'not ready';
  $('kafka-state').textContent = state;
  $('kafka-state').dataset.state = k.ready ? 'ready' : 'bad';
  $('kafka-lag').textContent = String(k.totalLag);
  $('kafka-since-commit').textContent =
    k.secondsSinceLastCommit === null ? '–' : `${fmt(k.secondsSinceLastCommit)} s`;
  $('kafka-partitions').textContent = k.partitions.length > 0 ? k.partitions.join(' ') : 'none';
  $('kafka-broker').textContent = k.brokerConnected ? 'connected' : 'no answer';
  $('kafka-rebalances').textContent = String(k.rebalances);
  $('kafka-crashes').textContent = `${k.crashes} / ${k.rejoins}`;
  $('kafka-restores').textContent =
    k.lastRestoreSeconds === null ? String(k.restores) : `${k.restores} (${fmt(k.lastRestoreSeconds)} s)`;
  $('kafka-reason').textContent = k.reason ?? '';
}

function fmt(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  if (n >= 100) return String(Math.round(n));
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function render() {
  $('predictions-seen').textContent = String(seen);
  $('dropped').textContent = String(dropped);
  renderList();
  renderKeyCharts();
}

$('filter-form').addEventListener('submit', (e) => {
  e.preventDefault();
  prefix = $('prefix').value.trim();
  keys.clear();
  picked.clear();
  const old = socket;
  socket = undefined;
  old?.close();
  connect();
});

initSystemCharts();
connect();
pollStats();
setInterval(pollStats, STATS_EVERY_MS);
setInterval(render, RENDER_EVERY_MS);
