// The trajectory map of one seed: w at every step over the reference cloud, drawn once per
// trajectory with the page's plotly. The ring that follows the slider is the viewer's (an
// absolutely placed div): this file hands it the pixel position of every step.
//   hooks.current()  false once a newer trajectory replaced this one
//   hooks.placed(p)  p[k] = [x, y] of step k in the map's pixels (after every redraw)
//   hooks.step(k)    a step was clicked
// Late steps often land on one point of the map (they differ by less than its resolution), so
// the end of the path is drawn again, magnified, below it (drawPathEnd): every step reachable.
// Uses: STEP_COLORSCALE, mapLayout (common.js); chartInk, themed (theme.js).
function drawTrajectoryMap(Plotly, map, preview, v, a, hooks) {
  const xs = v.xy.map((p) => p[0]), ys = v.xy.map((p) => p[1]);
  const steps = v.xy.map((_, k) => k), H = Math.max(1, v.trained_steps);
  const trace = stepTrace(v, steps, xs, ys, H, true);
  const layout = mapLayout(a, xs, ys, `${v.reference_method} map of w: the seed's path, step by step`, v.reference_method);
  if (v.shared_start) {
    layout.annotations = [{ x: xs[0], y: ys[0], text: "start (every seed)", showarrow: true, arrowhead: 0, ax: -36, ay: 28,
                            font: { size: 11, color: chartInk().text }, arrowcolor: chartInk().text }];
  }
  return Plotly.newPlot(map, [trace], layout, { displayModeBar: false, responsive: true }).then(() => {
    const place = () => {
      const fl = map._fullLayout;
      // A plot of an older trajectory can finish drawing after a newer one started: ignore it.
      if (!hooks.current() || !fl || !fl.xaxis || !fl.xaxis.l2p) return;
      hooks.placed(v.xy.map(([x, y]) => [fl._size.l + fl.xaxis.l2p(x), fl._size.t + fl.yaxis.l2p(y)]));
    };
    place();
    map.on("plotly_afterplot", place);  // resize or zoom: the overlay follows
    hoverAndClick(map, preview, v, hooks);
  });
}

// Colour says which step up to the trained H; a step beyond it keeps H's colour, so it is drawn
// as a diamond, named in its hover text, and the colour bar's top reads "H+". The markers'
// outline is the theme's ink: viridis' dark end alone was 1.3:1 on the dark theme's panel.
function stepTrace(v, steps, xs, ys, H, colorbar) {
  const beyond = v.xy.length - 1 > H;
  const ticks = H <= 8 ? steps.filter((k) => k <= H) : [0, Math.round(H / 2), H];
  return { x: xs, y: ys, customdata: steps, mode: "lines+markers", type: "scatter", name: `seed ${v.seed}`,
           line: { color: chartInk().line, width: 1.5 },
           marker: { size: steps.map((k) => (k > H ? 11 : 9)), color: steps, colorscale: STEP_COLORSCALE, cmin: 0,
                     cmax: H, symbol: steps.map((k) => (k > H ? "diamond" : "circle")),
                     line: { color: chartInk().line, width: 1.5 }, showscale: colorbar,
                     colorbar: { title: { text: "step" }, thickness: 10, tickvals: ticks,
                                 ticktext: ticks.map((k) => (k === H && beyond ? `${H}+` : String(k))) } },
           text: steps.map((k) => (k > H ? ` (beyond the trained H = ${H})` : "")),
           hovertemplate: "step %{customdata}%{text}<extra></extra>" };
}

function hoverAndClick(plot, preview, v, hooks) {
  plot.on("plotly_hover", (ev) => {
    const p = ev.points[0];
    if (!p || p.curveNumber !== 0) return;   // the run-on overlay has no frames here
    preview.src = v.frames[p.customdata];   // step 0's may still be the viewer's blank (fillStart)
    preview.alt = `the image at step ${p.customdata}`;
    preview.style.display = "block";
  });
  plot.on("plotly_unhover", () => { preview.style.display = "none"; });
  plot.on("plotly_click", (ev) => { if (ev.points[0] && ev.points[0].curveNumber === 0) hooks.step(ev.points[0].customdata); });
}

// The legend, in words under the map.
function mapKey(v) {
  const H = v.trained_steps;
  const beyond = v.xy.length - 1 > H ? ` ◆ diamonds: steps beyond the trained H = ${H}.` : "";
  return `● circles: this seed's w after each step up to H = ${H}, coloured by step.${beyond} ○ ring: the step shown.`
       + ` Faint dots: other seeds' steps. Near on the map = similar w; the axes have no units.`
       + (v.tail ? ` Late steps can share one point here. Below, the path's end through a fisheye: each step in its true direction from the path's end, its distance from it on a log scale (each grey ring: ten times farther), so every step stands apart.` : "");
}

// The end of the path through a fisheye (payload.tail, app/service.py path_end: the late steps
// around the last one, each in its true direction, its distance on a log scale, one ring per
// power of ten): each step a labelled point, hover and click as above.
function drawPathEnd(Plotly, box, preview, v, hooks) {
  const t = v.tail;
  if (!t) { box.parentElement.style.display = "none"; return; }
  box.parentElement.style.display = "";
  const steps = t.xy.map((_, k) => t.from_step + k);
  const xs = t.xy.map((p) => p[0]), ys = t.xy.map((p) => p[1]);
  // Every step's number when they fit; past 16, every fourth, the trained H and the last.
  const last = v.xy.length - 1, H = v.trained_steps;
  const named = steps.map((k) => steps.length <= 16 || k % 4 === 0 || k === H || k === last);
  const base = stepTrace(v, steps, xs, ys, Math.max(1, H), false);
  const trace = { ...base, mode: "lines+markers+text", marker: { ...base.marker, size: steps.map((k) => (k > H ? 8 : 7)) },
                  textposition: "top center", text: steps.map((k, j) => (named[j] ? String(k) : "")),
                  textfont: { size: 10, color: chartInk().text },
                  hovertemplate: steps.map((k, j) => `step ${k}${k > H ? ` (beyond the trained H = ${H})` : ""}: ${t.distance[j]} in w from step ${last}, the path's end<extra></extra>`) };
  const span = Math.max(...xs.map(Math.abs), ...ys.map(Math.abs), 1e-6) * 1.35;
  Plotly.newPlot(box, [trace], themed({
    margin: { l: 10, r: 10, t: 34, b: 10 }, height: 280, showlegend: false, hovermode: "closest",
    title: { text: `The path's end through a fisheye (steps ${t.from_step}–${v.xy.length - 1})`, font: { size: 12 } },
    xaxis: { range: [-span, span], showticklabels: false, zeroline: false, showgrid: false },
    yaxis: { range: [-span, span], showticklabels: false, zeroline: false, showgrid: false, scaleanchor: "x" },
    shapes: Array.from({ length: Math.floor(span) }, (_, k) => ({ type: "circle", x0: -(k + 1), x1: k + 1, y0: -(k + 1), y1: k + 1,
                                                                   line: { color: chartInk().grid, width: 1 }, layer: "below" })),
  }), { displayModeBar: false, responsive: true }).then(() => {
    const place = () => {
      const fl = box._fullLayout;
      if (!hooks.current() || !fl || !fl.xaxis || !fl.xaxis.l2p) return;
      hooks.placed(t.xy.map(([x, y]) => [fl._size.l + fl.xaxis.l2p(x), fl._size.t + fl.yaxis.l2p(y)]));
    };
    place();
    box.on("plotly_afterplot", place);
    hoverAndClick(box, preview, v, hooks);
  });
}

// The run-on overlay: the path from the trajectory's end to step 64, dashed, in amber diamonds.
function beyondTrace(b) {
  const steps = b.xy.map((_, k) => b.from_step + k);
  return { x: b.xy.map((p) => p[0]), y: b.xy.map((p) => p[1]), customdata: steps, type: "scatter", mode: "lines+markers",
           line: { color: "#d97706", width: 1.5, dash: "dot" },
           marker: { symbol: "diamond", size: 7, color: "#d97706", line: { color: chartInk().line, width: 1 } },
           hovertemplate: "step %{customdata} (run on)<extra></extra>", name: "run on" };
}
