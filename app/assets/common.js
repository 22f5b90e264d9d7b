// Helpers shared by the viewer and the grid (app/ui.py puts this file in front of each
// component's own script, inside one function per kind of component, so each gets its own
// copy in its own scope; nothing global but those functions, the page's one plotly.js and
// the assets cache).
const $ = (sel) => element.querySelector(sel);
const assetCache = window.__rtmAssets || (window.__rtmAssets = new Map());  // url -> Promise(assets), one fetch per checkpoint

function make(tag, cls, attrs) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, val] of Object.entries(attrs || {})) e.setAttribute(k, String(val));
  return e;
}

function assets(url) {
  if (!assetCache.has(url)) {
    assetCache.set(url, fetch(url).then((r) => {
      if (!r.ok) throw new Error(`assets: HTTP ${r.status}`);
      return r.json();
    }));
  }
  return assetCache.get(url);
}

function whenPlotly(url, fn, waited = 0) {
  if (window.Plotly) return fn(window.Plotly);
  if (url && !document.getElementById("rtm-plotly")) {  // one copy for the page, loaded once
    document.head.append(make("script", "", { id: "rtm-plotly", src: url, async: "" }));
  }
  if (waited > 30000) return;  // the map and chart stay empty; the frames still work
  setTimeout(() => whenPlotly(url, fn, waited + 50), 50);
}

// Viridis, for "which step" colours (cloud and path share it), stopped short of its pale yellow
// end, which vanishes on a white map (a one-step model's every later point was that yellow).
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [53, 183, 121], [122, 209, 81]];
const STEP_COLORSCALE = VIRIDIS.map((c, k) => [k / (VIRIDIS.length - 1), `rgb(${c.join(",")})`]);
function viridis(t) {
  t = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const k = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - k;
  return VIRIDIS[k].map((c, j) => Math.round(c + f * (VIRIDIS[k + 1][j] - c)));
}

function cloudImage(ref, range) {
  // 3,000 reference points painted once on a canvas: far cheaper than 3,000 plotly markers.
  const size = 600, c = document.createElement("canvas");
  c.width = c.height = size;
  const ctx = c.getContext("2d");
  const maxStep = Math.max(1, ...ref.step);
  const sx = (x) => ((x - range.x[0]) / (range.x[1] - range.x[0])) * size;
  const sy = (y) => size - ((y - range.y[0]) / (range.y[1] - range.y[0])) * size;
  ctx.globalAlpha = 0.35;
  for (let k = 0; k < ref.x.length; k++) {
    const [r, g, b] = viridis(ref.step[k] / maxStep);
    ctx.fillStyle = `rgb(${r},${g},${b})`;
    ctx.fillRect(sx(ref.x[k]) - 1.5, sy(ref.y[k]) - 1.5, 3, 3);
  }
  return c.toDataURL("image/png");
}

function extent(values, pad) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

// The map's frame: axis ranges over the cloud and the paths, and the cloud as one image below.
// Its axes are unnumbered: a UMAP's coordinates mean nothing, only nearness does.
function mapLayout(a, xs, ys, title, method = "map") {
  const range = { x: extent(a.reference.x.concat(xs), 0.05), y: extent(a.reference.y.concat(ys), 0.05) };
  const axis = (k, r) => ({ range: r, zeroline: false, showticklabels: false, title: { text: `${method} ${k}`, standoff: 4 } });
  return themed({ margin: { l: 30, r: 10, t: 48, b: 30 }, height: 350, showlegend: false, hovermode: "closest",
           title: { text: title, font: { size: 13 } },
           xaxis: axis(1, range.x), yaxis: axis(2, range.y),
           images: [{ source: cloudImage(a.reference, range), xref: "x", yref: "y", x: range.x[0], y: range.y[1],
                      sizex: range.x[1] - range.x[0], sizey: range.y[1] - range.y[0], sizing: "stretch",
                      layer: "below" }] });
}

// Type into one of Gradio's number boxes (by its elem_id) as a user would: its value follows.
function setNumber(elemId, value) {
  const input = document.querySelector(`#${elemId} input`);
  if (!input) return false;
  input.value = String(value);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  input.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
}

// The step control both the viewer and the grid use. S holds step, pending, raf, playing,
// playStart, playFrom; show(i) puts step i on screen; lastStep() is the last step.
// request(i): however many input events arrive, one show() per animation frame.
// play(): time-based, so it runs at 10 steps/s whatever a frame costs; a second call pauses.
function stepper(S, show, lastStep) {
  function request(i) {
    S.pending = i;
    if (!S.raf) S.raf = requestAnimationFrame(() => { S.raf = 0; show(S.pending); });
  }

  function stop() {
    S.playing = false;
    const button = $(".rtm-play");
    if (button) button.textContent = "▶ play";
  }

  function play() {
    if (S.playing) return stop();
    const n = lastStep();
    S.playing = true;
    S.playFrom = S.step >= n ? 0 : S.step;
    S.playStart = performance.now();
    $(".rtm-play").textContent = "❚❚ pause";
    show(S.playFrom);
    const tick = (t) => {
      if (!S.playing) return;
      const i = Math.min(n, S.playFrom + Math.floor((t - S.playStart) / 100));
      if (i !== S.step) show(i);
      if (i >= n) return stop();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  return { request, stop, play };
}

// A share as people read it: 0.4% stays 0.4%, 37.2% is 37%, and a change is never "0%".
function percentText(x) {
  const p = 100 * x;
  if (p === 0) return "0%";
  if (p < 0.1) return "< 0.1%";
  return Number(p.toFixed(1)) < 10 ? `${p.toFixed(1)}%` : `${p.toFixed(0)}%`;
}

// The view in the address bar: ?checkpoint=…&seed=…&steps=…&step=… (the page restores it on load,
// app/ui.py RESTORE_JS). Other parameters (compare, grid) are kept.
function writeUrl(state) {
  const url = new URL(window.location.href);
  for (const [k, val] of Object.entries(state)) url.searchParams.set(k, String(val));
  window.history.replaceState(null, "", url);
}

// The address the page opened with (before the viewer rewrote it).
const OPENED_WITH = window.__rtmOpenedWith || (window.__rtmOpenedWith = new URL(window.location.href).searchParams);

// While the view a link names is on its way (app/ui.py restore), the viewer must not write the
// address bar over it with the page's default seed; 10 s at most, or until the visitor acts.
function linkPending() {
  return OPENED_WITH.has("seed") && !window.__rtmUrlStepUsed && performance.now() < 10000;
}

// The step a link asked for, once per page and only for the trajectory it named.
function urlStep(v) {
  if (window.__rtmUrlStepUsed) return null;
  const q = OPENED_WITH;
  const step = Number(q.get("step"));
  if (!q.has("step") || !Number.isInteger(step) || q.get("seed") !== String(v.seed)) return null;
  window.__rtmUrlStepUsed = true;
  return Math.max(0, Math.min(v.frames.length - 1, step));
}

function copyLink(button) {
  const done = (text) => { button.textContent = text; setTimeout(() => { button.textContent = "🔗 copy a link to this view"; }, 2000); };
  const link = window.location.href;
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(link).then(() => done("✓ link copied"), () => window.prompt("Copy this link:", link));
  } else {
    window.prompt("Copy this link:", link);
  }
}

// One call of the app's REST API (the same one `gradio_client` uses): POST the inputs, then
// read the result's event stream. Resolves with the output, rejects with the server's message.
async function callApi(name, data) {
  const root = ((window.gradio_config && window.gradio_config.root) || window.location.origin).replace(/\/?$/, "/");
  const posted = await fetch(`${root}gradio_api/call/${name}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                                  body: JSON.stringify({ data }) });
  const body = await posted.json().catch(() => ({}));
  if (!posted.ok || !body.event_id) throw new Error(body.error || `HTTP ${posted.status}`);
  const text = await (await fetch(`${root}gradio_api/call/${name}/${body.event_id}`)).text();
  let event = "", out = null;
  for (const line of text.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7).trim();
    else if (line.startsWith("data: ")) out = { event, data: line.slice(6) };
  }
  if (!out || out.event !== "complete") throw new Error(out && out.data && out.data !== "null" ? JSON.parse(out.data) : "the server gave no result");
  return JSON.parse(out.data)[0];
}
