"""The explorer's one page: plain HTML and JavaScript, no build step (``audiovae serve``)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>audiovae explorer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
  section { border: 1px solid #ddd; border-radius: 8px; padding: 0.8rem 1rem; margin: 0.8rem 0; }
  label { margin-right: 0.8rem; } input[type=range] { width: 16rem; vertical-align: middle; }
  .row { margin: 0.4rem 0; } .out { display: flex; gap: 0.8rem; align-items: center; margin-top: 0.5rem; }
  #error { color: #b00020; min-height: 1.2em; } #status { color: #666; min-height: 1.2em; }
  .value { display: inline-block; width: 3rem; text-align: right; font-variant-numeric: tabular-nums; }
  img.spectrogram { height: 72px; width: 160px; image-rendering: pixelated; border: 1px solid #ddd; }
  img.spectrogram:not([src]) { visibility: hidden; }
  #map { border: 1px solid #ccc; cursor: crosshair; display: block; max-width: 100%; }
  #legend span { margin-right: 0.8rem; white-space: nowrap; } #legend i { display: inline-block; width: 0.7rem;
    height: 0.7rem; border-radius: 50%; margin-right: 0.25rem; vertical-align: middle; }
</style>
</head>
<body>
<h1>audiovae explorer</h1>
<p id="about"></p>
<div id="error" role="alert"></div>
<div id="status" aria-live="polite"></div>

<section>
  <h2>Map</h2>
  <p class="row">The training sounds on the latent's first two principal directions. Click a point to hear
    it as the model renders it; click anywhere else to make the sound at that place.</p>
  <canvas id="map" width="720" height="420"></canvas>
  <div id="legend" class="row"></div>
  <div class="out"><audio id="map-audio" controls></audio> <img id="map-audio-spectrogram" class="spectrogram" alt="spectrogram">
    <span id="map-note"></span> <a id="map-audio-download" hidden>download WAV</a></div>
</section>

<section>
  <h2>Generate</h2>
  <div class="row">
    <label>label <select id="label"></select></label>
    <label>seed <input id="seed" type="number" value="0" min="0" style="width:5rem"></label>
    <button id="generate">Generate</button>
  </div>
  <div id="sliders"></div>
  <div class="out"><audio id="generated-audio" controls></audio> <img id="generated-audio-spectrogram" class="spectrogram" alt="spectrogram">
    <a id="generated-audio-download" hidden>download WAV</a></div>
</section>

<section>
  <h2>Morph</h2>
  <div class="row">
    <label>from <select id="morph-a"></select></label>
    <label>to <select id="morph-b"></select></label>
  </div>
  <div class="row"><label>position <input id="position" type="range" min="0" max="1" step="0.05" value="0.5">
    <span class="value" id="position-value">0.50</span></label></div>
  <div class="out"><audio id="morph-audio" controls></audio> <img id="morph-audio-spectrogram" class="spectrogram" alt="spectrogram">
    <a id="morph-audio-download" hidden>download WAV</a></div>
</section>

<section>
  <h2>Vary</h2>
  <div class="row">
    <label>sound <select id="vary-source"></select></label>
    <label>noise <input id="noise" type="range" min="0" max="2" step="0.1" value="0.5">
      <span class="value" id="noise-value">0.5</span></label>
    <button id="vary">Vary</button>
  </div>
  <div class="out"><audio id="vary-audio" controls></audio> <img id="vary-audio-spectrogram" class="spectrogram" alt="spectrogram">
    <a id="vary-audio-download" hidden>download WAV</a></div>
</section>

<section>
  <h2>Your own sound</h2>
  <div class="row"><input id="upload" type="file" accept="audio/*"> <span id="upload-note"></span></div>
</section>

<script>
const $ = (id) => document.getElementById(id);
let busy = 0;

function status() { $("status").textContent = busy ? "working..." : ""; }

async function call(url, body, filename) {
  busy += 1; status(); $("error").textContent = "";
  try {
    const response = await fetch(url, filename === undefined
      ? {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)}
      : {method: "POST", headers: {"X-Filename": filename}, body: body});
    const answer = await response.json().catch(() => ({error: response.statusText}));
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  } catch (err) {
    $("error").textContent = err.message;
    throw err;
  } finally {
    busy -= 1; status();
  }
}

function play(id, result) {
  const audio = $(id);
  audio.src = result.url;
  audio.dataset.name = result.name;
  $(id + "-spectrogram").src = result.spectrogram;
  const link = $(id + "-download");
  link.href = result.url; link.download = result.name; link.hidden = false;
}

function addRecording(key) {
  for (const id of ["morph-a", "morph-b", "vary-source"]) {
    const option = document.createElement("option");
    option.value = option.textContent = key;
    $(id).appendChild(option);
  }
}

function moves() {
  return Array.from(document.querySelectorAll("#sliders input")).map((s) => parseFloat(s.value));
}

async function generate() {
  play("generated-audio", await call("/api/generate",
    {label: $("label").value, seed: parseInt($("seed").value || "0"), moves: moves()}));
}

async function morph() {
  if (!$("morph-a").value || !$("morph-b").value) { $("error").textContent = "pick or upload two sounds"; return; }
  play("morph-audio", await call("/api/morph",
    {a: $("morph-a").value, b: $("morph-b").value, position: parseFloat($("position").value)}));
}

async function vary() {
  if (!$("vary-source").value) { $("error").textContent = "pick or upload a sound"; return; }
  play("vary-audio", await call("/api/vary",
    {source: $("vary-source").value, noise: parseFloat($("noise").value), seed: Math.floor(Math.random() * 1e6)}));
}

async function upload() {
  const file = $("upload").files[0];
  if (!file) return;
  const answer = await call("/api/upload", file, file.name);
  addRecording(answer.id);
  $("morph-b").value = answer.id; $("vary-source").value = answer.id;
  $("upload-note").textContent = file.name + " (" + answer.seconds.toFixed(2) + " s) is " + answer.id;
}

const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
let map = null;  // {points, toCanvas, fromCanvas}

function drawMap(data) {
  const canvas = $("map"), ctx = canvas.getContext("2d"), pad = 16;
  const xs = data.points.map((p) => p.x), ys = data.points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (canvas.width - 2 * pad) / ((x1 - x0) || 1), sy = (canvas.height - 2 * pad) / ((y1 - y0) || 1);
  const toCanvas = (x, y) => [pad + (x - x0) * sx, canvas.height - pad - (y - y0) * sy];
  const fromCanvas = (cx, cy) => [x0 + (cx - pad) / sx, y0 + (canvas.height - pad - cy) / sy];
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  data.points.forEach((p) => {
    const [cx, cy] = toCanvas(p.x, p.y);
    ctx.fillStyle = COLOURS[data.labels.indexOf(p.label) % COLOURS.length];
    ctx.beginPath(); ctx.arc(cx, cy, 3.5, 0, 2 * Math.PI); ctx.fill();
  });
  $("legend").replaceChildren(...data.labels.map((label, i) => {  // labels are file names: text, not HTML
    const item = document.createElement("span"), dot = document.createElement("i");
    dot.style.background = COLOURS[i % COLOURS.length];
    item.append(dot, label);
    return item;
  }));
  canvas.dataset.points = String(data.points.length);
  map = {points: data.points, toCanvas, fromCanvas};
}

async function clickMap(event) {
  if (!map) return;
  const rect = $("map").getBoundingClientRect();
  const cx = (event.clientX - rect.left) * $("map").width / rect.width;
  const cy = (event.clientY - rect.top) * $("map").height / rect.height;
  let best = -1, bestDistance = 6 * 6;  // a click within 6 pixels of a point is that point
  map.points.forEach((p, i) => {
    const [px, py] = map.toCanvas(p.x, p.y), d = (px - cx) ** 2 + (py - cy) ** 2;
    if (d <= bestDistance) { best = i; bestDistance = d; }
  });
  const [x, y] = map.fromCanvas(cx, cy);
  const result = await call("/api/at", best >= 0 ? {point: best} : {x, y});
  play("map-audio", result);
  $("map-note").textContent = best >= 0 ? "training sound " + best + " (" + result.label + ")"
    : "a new " + result.label + " at (" + x.toFixed(2) + ", " + y.toFixed(2) + ")";
}

async function start() {
  const info = await (await fetch("/api/info")).json();
  $("about").textContent = info.labels.length + " labels, " + info.seconds.toFixed(2) + " s sounds at " +
    info.sample_rate + " Hz; uploads up to " + info.max_upload_seconds + " s and " + info.max_upload_mb + " MB.";
  for (const label of info.labels) {
    const option = document.createElement("option");
    option.value = option.textContent = label;
    $("label").appendChild(option);
  }
  for (let k = 0; k < info.sliders; k++) {
    const row = document.createElement("div");
    row.className = "row";
    row.innerHTML = '<label>direction ' + (k + 1) + ' <input type="range" min="-3" max="3" step="0.1" value="0" ' +
      'id="pc' + k + '"> <span class="value" id="pc' + k + '-value">0.0</span></label>';
    $("sliders").appendChild(row);
    const slider = $("pc" + k);
    slider.addEventListener("input", () => { $("pc" + k + "-value").textContent = parseFloat(slider.value).toFixed(1); });
    slider.addEventListener("change", () => generate().catch(() => {}));  // on release
  }
  drawMap(await (await fetch("/api/map")).json());
  $("map").addEventListener("click", (event) => clickMap(event).catch(() => {}));
  info.recordings.forEach(addRecording);
  if (info.recordings.length > 1) $("morph-b").value = info.recordings[1];
  $("generate").addEventListener("click", () => generate().catch(() => {}));
  $("position").addEventListener("input", () => { $("position-value").textContent = parseFloat($("position").value).toFixed(2); });
  $("position").addEventListener("change", () => morph().catch(() => {}));
  $("noise").addEventListener("input", () => { $("noise-value").textContent = parseFloat($("noise").value).toFixed(1); });
  $("vary").addEventListener("click", () => vary().catch(() => {}));
  $("upload").addEventListener("change", () => upload().catch(() => {}));
  document.body.dataset.ready = "true";
}

start();
</script>
</body>
</html>
"""
