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
</style>
</head>
<body>
<h1>audiovae explorer</h1>
<p id="about"></p>
<div id="error" role="alert"></div>
<div id="status" aria-live="polite"></div>

<section>
  <h2>Generate</h2>
  <div class="row">
    <label>label <select id="label"></select></label>
    <label>seed <input id="seed" type="number" value="0" min="0" style="width:5rem"></label>
    <button id="generate">Generate</button>
  </div>
  <div id="sliders"></div>
  <div class="out"><audio id="generated-audio" controls></audio>
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
  <div class="out"><audio id="morph-audio" controls></audio>
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
  <div class="out"><audio id="vary-audio" controls></audio>
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
