// The trajectory map of one seed: w at every step over the reference cloud, drawn once per
// trajectory with the page's plotly. The ring that follows the slider is the viewer's (an
// absolutely placed div): this file hands it the pixel position of every step.
//   hooks.current()  false once a newer trajectory replaced this one
//   hooks.placed(p)  p[k] = [x, y] of step k in the map's pixels (after every redraw)
//   hooks.step(k)    a step was clicked
function drawTrajectoryMap(Plotly, map, preview, v, a, hooks) {
  const xs = v.xy.map((p) => p[0]), ys = v.xy.map((p) => p[1]);
  const steps = v.xy.map((_, k) => k), H = Math.max(1, v.trained_steps);
  // Colour says which step up to the trained H; a step beyond it keeps H's colour, so it is drawn
  // as a diamond, named in its hover text, and the colour bar's top reads "H+".
  const beyond = steps.length - 1 > H;
  const ticks = H <= 8 ? steps.filter((k) => k <= H) : [0, Math.round(H / 2), H];
  const trace = { x: xs, y: ys, customdata: steps, mode: "lines+markers", type: "scatter", name: `seed ${v.seed}`,
                  line: { color: chartInk().line, width: 1.5 },
                  marker: { size: steps.map((k) => (k > H ? 11 : 9)), color: steps, colorscale: STEP_COLORSCALE, cmin: 0,
                            cmax: H, symbol: steps.map((k) => (k > H ? "diamond" : "circle")),
                            line: { color: "#222", width: 1 }, showscale: true,
                            colorbar: { title: { text: "step" }, thickness: 10, tickvals: ticks,
                                        ticktext: ticks.map((k) => (k === H && beyond ? `${H}+` : String(k))) } },
                  text: steps.map((k) => (k > H ? ` (beyond the trained H = ${H})` : "")),
                  hovertemplate: "step %{customdata}%{text}<extra></extra>" };
  const layout = mapLayout(a, xs, ys, `${v.reference_method} of w at every step<br>(cloud: reference seeds)`);
  Plotly.newPlot(map, [trace], layout, { displayModeBar: false, responsive: true }).then(() => {
    const place = () => {
      const fl = map._fullLayout;
      // A plot of an older trajectory can finish drawing after a newer one started: ignore it.
      if (!hooks.current() || !fl || !fl.xaxis || !fl.xaxis.l2p) return;
      hooks.placed(v.xy.map(([x, y]) => [fl._size.l + fl.xaxis.l2p(x), fl._size.t + fl.yaxis.l2p(y)]));
    };
    place();
    map.on("plotly_afterplot", place);  // resize or zoom: the overlay follows
    map.on("plotly_hover", (ev) => {
      const p = ev.points[0];
      if (!p) return;
      preview.src = v.frames[p.customdata];
      preview.alt = `the image at step ${p.customdata}`;
      preview.style.display = "block";
    });
    map.on("plotly_unhover", () => { preview.style.display = "none"; });
    map.on("plotly_click", (ev) => { if (ev.points[0]) hooks.step(ev.points[0].customdata); });
  });
}
