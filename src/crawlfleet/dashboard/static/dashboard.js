// crawlfleet dashboard: live figures over server-sent events and charts drawn by uPlot.
"use strict";

const refreshMs = Number(document.body.dataset.refreshMs || 2000);
const charts = {};

function showProblem(message) {
  const box = document.querySelector("[data-live-problem]");
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}

// Elements with data-live="name" take the event's text for that name; data-live-bar progress
// bars take a percentage; data-live-chart charts are redrawn from the event's series.
function applyNumbers(data) {
  const texts = data.text || data;
  for (const [name, value] of Object.entries(texts)) {
    if (typeof value !== "string") continue;
    for (const el of document.querySelectorAll(`[data-live="${name}"]`)) el.textContent = value;
  }
  for (const [name, value] of Object.entries(data.bars || {})) {
    for (const el of document.querySelectorAll(`[data-live-bar="${name}"]`)) el.value = value;
  }
  if (data.depths && charts.depths) charts.depths.setData(depthColumns(data.depths));
  showProblem("");
}

function subscribe(source) {
  const events = new EventSource(source);
  events.addEventListener("numbers", (e) => applyNumbers(JSON.parse(e.data)));
  events.addEventListener("problem", (e) => showProblem(JSON.parse(e.data).message));
  events.addEventListener("end", (e) => { events.close(); showProblem(JSON.parse(e.data).message); });
  // The browser reconnects by itself; say so while it does.
  events.onerror = () => showProblem("live updates interrupted: reconnecting…");
  window.addEventListener("pagehide", () => events.close());
}

function width(el) {
  return Math.max(320, Math.min(640, el.parentElement.clientWidth - 16));
}

function throughputChart(el, data) {
  return new uPlot({
    title: "Attempts ended per minute",
    width: width(el), height: 220,
    series: [{}, { label: "succeeded", stroke: "#1a7f37" }, { label: "failed", stroke: "#c62828" },
             { label: "expired", stroke: "#b26a00" }],
    axes: [{}, { label: "attempts" }],
  }, [data.minute, data.succeeded, data.failed, data.expired], el);
}

function latencyChart(el, data) {
  return new uPlot({
    title: "Wait from due to lease (ms)",
    width: width(el), height: 220,
    // Minutes without leases have no wait: points, so that a lone minute shows.
    series: [{}, { label: "average", stroke: "#0b5cad", spanGaps: true, points: { show: true } },
             { label: "max", stroke: "#8250df", dash: [4, 4], spanGaps: true, points: { show: true } }],
    axes: [{}, { label: "ms" }],
  }, [data.minute, data.wait_avg_ms, data.wait_max_ms], el);
}

function depthColumns(depths) {
  return [depths.depth, depths.total, depths.ended, depths.fetched];
}

function depthChart(el, depths) {
  const bars = uPlot.paths.bars({ size: [0.6, 60] });
  return new uPlot({
    title: "Jobs by depth",
    width: width(el), height: 220,
    // Cumulative series drawn over each other read as stacked bands: pending, failed, fetched.
    scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] } },
    series: [{ label: "depth" },
             { label: "all jobs", fill: "#0b5cad55", stroke: "#0b5cad", paths: bars, points: { show: false } },
             { label: "ended", fill: "#c62828aa", stroke: "#c62828", paths: bars, points: { show: false } },
             { label: "fetched", fill: "#1a7f37", stroke: "#1a7f37", paths: bars, points: { show: false } }],
    axes: [{ label: "depth", incrs: [1] }, { label: "jobs" }],
  }, depthColumns(depths), el);
}

async function loadActivity() {
  const targets = document.querySelectorAll("[data-source='/api/activity']");
  if (!targets.length) return;
  const response = await fetch("/api/activity", { credentials: "same-origin" });
  if (!response.ok) { showProblem(`charts: ${await response.text()}`); return; }
  const data = await response.json();
  for (const el of targets) {
    const kind = el.dataset.chart;
    if (charts[kind]) {
      charts[kind].setData(kind === "throughput"
        ? [data.minute, data.succeeded, data.failed, data.expired]
        : [data.minute, data.wait_avg_ms, data.wait_max_ms]);
    } else {
      charts[kind] = kind === "throughput" ? throughputChart(el, data) : latencyChart(el, data);
    }
    el.dataset.ready = "true";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-live-source]")) subscribe(el.dataset.liveSource);
  const depthEl = document.querySelector("[data-chart='depths']");
  if (depthEl) {
    charts.depths = depthChart(depthEl, JSON.parse(document.getElementById("depths-data").textContent));
    depthEl.dataset.ready = "true";
  }
  if (document.querySelector("[data-source='/api/activity']")) {
    loadActivity();
    // The charts are per minute: a refresh a few times a minute keeps the last point current.
    setInterval(loadActivity, Math.max(15000, refreshMs * 5));
  }
});
