// The refinement viewer. Runs in the browser as gr.HTML's js_on_load: `element` is the
// component, `props.value` the payload from app/service.py (every frame as a data URI, the
// path on the map, the per-step displacement). Scrubbing, play, hover and click never talk
// to the server: everything they need arrived with the payload.
(() => {
  const state = { step: 0, timer: null };
  const $ = (sel) => element.querySelector(sel);
  const hasPlotly = () => typeof window.Plotly !== "undefined";

  function stop() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    const play = $(".rtm-play");
    if (play) play.textContent = "▶ play";
  }

  function show(i) {
    const v = props.value;
    const n = v.frames.length - 1;
    i = Math.max(0, Math.min(n, i));
    state.step = i;
    $(".rtm-root").dataset.step = String(i);
    $(".rtm-frame").src = v.frames[i];
    $(".rtm-slider").value = String(i);
    const beyond = i > v.trained_steps ? ` — beyond the trained H = ${v.trained_steps}` : "";
    const moved = i > 0 ? `, moved ${v.displacement[i - 1].toFixed(3)} in w` : " (the start, before any refinement)";
    $(".rtm-caption").textContent = `step ${i} of ${n}${moved}${beyond}`;
    element.querySelectorAll(".rtm-strip img").forEach((img, k) => img.classList.toggle("rtm-current", k === i));
    if (hasPlotly() && $(".rtm-map").data) {
      Plotly.restyle($(".rtm-map"), { x: [[v.xy[i][0]]], y: [[v.xy[i][1]]] }, [2]);
      const colors = v.displacement.map((_, k) => (k + 1 === i ? "#d62728" : "#7f7f7f"));
      Plotly.restyle($(".rtm-disp"), { "marker.color": [colors] }, [0]);
    }
  }

  function play() {
    if (state.timer) return stop();
    const n = props.value.frames.length - 1;
    if (state.step >= n) show(0);
    $(".rtm-play").textContent = "❚❚ pause";
    state.timer = setInterval(() => {
      if (state.step >= n) return stop();
      show(state.step + 1);
    }, 100); // about 10 steps per second
  }

  function drawMap(v) {
    const map = $(".rtm-map");
    if (!hasPlotly()) {
      map.textContent = "The trajectory map needs plotly.js, which did not load.";
      return;
    }
    const ref = v.reference;
    const steps = v.xy.map((_, k) => k);
    const traces = [
      { x: ref.x, y: ref.y, mode: "markers", type: "scattergl", name: "reference seeds",
        marker: { size: 3, color: ref.step, colorscale: "Viridis", opacity: 0.25 }, hoverinfo: "skip" },
      { x: v.xy.map((p) => p[0]), y: v.xy.map((p) => p[1]), customdata: steps, mode: "lines+markers",
        type: "scatter", name: `seed ${v.seed}`, line: { color: "#444", width: 1.5 },
        marker: { size: 9, color: steps, colorscale: "Viridis", cmin: 0, cmax: Math.max(1, v.trained_steps),
                  line: { color: "#222", width: 1 }, showscale: true, colorbar: { title: { text: "step" }, thickness: 10 } },
        hovertemplate: "step %{customdata}<extra></extra>" },
      { x: [v.xy[0][0]], y: [v.xy[0][1]], mode: "markers", type: "scatter", name: "current step",
        marker: { size: 18, color: "rgba(0,0,0,0)", line: { color: "#d62728", width: 3 } }, hoverinfo: "skip" },
    ];
    const layout = { margin: { l: 30, r: 10, t: 30, b: 30 }, height: 340, showlegend: false,
                     title: { text: `${ref.method} of w at every step`, font: { size: 13 } },
                     xaxis: { zeroline: false }, yaxis: { zeroline: false }, hovermode: "closest" };
    Plotly.newPlot(map, traces, layout, { displayModeBar: false, responsive: true });
    const preview = $(".rtm-preview");
    map.on("plotly_hover", (ev) => {
      const p = ev.points.find((q) => q.curveNumber === 1);
      if (!p) return;
      preview.src = v.frames[p.customdata];
      preview.style.display = "block";
    });
    map.on("plotly_unhover", () => { preview.style.display = "none"; });
    map.on("plotly_click", (ev) => {
      const p = ev.points.find((q) => q.curveNumber === 1);
      if (p) { stop(); show(p.customdata); }
    });
  }

  function drawDisplacement(v) {
    if (!hasPlotly()) return;
    const h = v.displacement.map((_, k) => k + 1);
    Plotly.newPlot($(".rtm-disp"), [
      { x: h, y: v.displacement, type: "bar", marker: { color: "#7f7f7f" }, hovertemplate: "step %{x}: %{y:.3f}<extra></extra>" },
    ], {
      margin: { l: 40, r: 10, t: 30, b: 35 }, height: 180, title: { text: "‖w_h − w_{h−1}‖ per step", font: { size: 13 } },
      xaxis: { title: { text: "step h" }, dtick: h.length > 16 ? 4 : 1 },
      shapes: [{ type: "line", x0: v.trained_steps + 0.5, x1: v.trained_steps + 0.5, yref: "paper", y0: 0, y1: 1,
                 line: { dash: "dot", color: "#1f77b4" } }],
    }, { displayModeBar: false, responsive: true });
  }

  function render() {
    stop();
    const root = $(".rtm-root");
    if (!root) return;
    const v = props.value;
    if (!v || !v.frames) {
      root.innerHTML = '<div class="rtm-empty">Pick a seed and press <b>Generate</b>.</div>';
      return;
    }
    const n = v.frames.length - 1;
    root.innerHTML = `
      <div class="rtm-top">
        <div class="rtm-left">
          <img class="rtm-frame" alt="the image after the current refinement step">
          <div class="rtm-caption"></div>
          <div class="rtm-controls">
            <button class="rtm-prev" title="previous step">−1</button>
            <button class="rtm-play" title="play the refinement">▶ play</button>
            <button class="rtm-next" title="next step">+1</button>
            <input class="rtm-slider" type="range" min="0" max="${n}" step="1" aria-label="refinement step">
          </div>
        </div>
        <div class="rtm-mapbox"><div class="rtm-map"></div><img class="rtm-preview" alt="hovered step"></div>
      </div>
      <div class="rtm-strip">${v.frames.map((f, k) => `<img data-step="${k}" src="${f}" title="step ${k}">`).join("")}</div>
      ${v.nearest && v.nearest.length ? `<div class="rtm-nearest"><span>Nearest training images to the final frame
        (pixel RMS distance; near-copies would mean memorisation):</span>
        ${v.nearest.map((n) => `<figure><img src="${n.image}" alt="training image"><figcaption>${n.label}
          · ${n.distance}</figcaption></figure>`).join("")}</div>` : ""}
      <div class="rtm-disp"></div>`;
    $(".rtm-slider").addEventListener("input", (e) => { stop(); show(Number(e.target.value)); });
    $(".rtm-prev").addEventListener("click", () => { stop(); show(state.step - 1); });
    $(".rtm-next").addEventListener("click", () => { stop(); show(state.step + 1); });
    $(".rtm-play").addEventListener("click", play);
    element.querySelectorAll(".rtm-strip img").forEach((img) =>
      img.addEventListener("click", () => { stop(); show(Number(img.dataset.step)); }));
    drawMap(v);
    drawDisplacement(v);
    show(n);
  }

  watch("value", render);
  render();
})();
