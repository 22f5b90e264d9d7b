// The grid: many seeds refining together under one step slider. `props.value` is the grid
// payload (app/service.py grid_payload): the seeds, one sprite image of every frame (a row per
// step, a column per seed; fetched once), each seed's path on the map, each final frame's
// nearest training image.
//
// Speed: a step change is one CSS variable on the grid (every cell's background position
// follows it) plus one transform per seed's marker on the map, coalesced to one animation
// frame; plotly draws once per grid, and again only when the selection changes. Clicking a
// cell opens that seed in the main viewer (it types the seed and presses Generate).
// Uses: $, make, assets, whenPlotly, mapLayout, setNumber, stepper, writeUrl, linkPending (common.js);
// chartInk (theme.js).
(() => {
  const S = { v: null, step: 0, pending: -1, raf: 0, playing: false, playStart: 0, playFrom: 0,
              selected: 0, markers: [], mapPos: null };
  const { request, stop, play } = stepper(S, show, () => S.v.num_steps);

  function show(i) {
    const v = S.v, n = v.num_steps;
    i = Math.max(0, Math.min(n, i));
    S.step = i;
    const root = $(".rtm-groot");
    root.dataset.step = String(i);
    $(".rtm-gcells").style.setProperty("--rtm-step-y", `${n > 0 ? (i / n) * 100 : 0}%`);
    const slider = $(".rtm-slider");
    if (slider.value !== String(i)) slider.value = String(i);
    const beyond = i > v.trained_steps ? ` — beyond the trained H = ${v.trained_steps}` : "";
    $(".rtm-caption").textContent = `step ${i} of ${n} for all ${v.seeds.length} seeds${beyond}`;
    if (S.mapPos) S.markers.forEach((m, k) => { const [x, y] = S.mapPos[k][i]; m.style.transform = `translate(${x}px, ${y}px)`; });
  }

  function userStep(i) { stop(); request(i); }

  function select(k, open) {
    const v = S.v, cells = element.querySelectorAll(".rtm-gcell");
    if (cells[S.selected]) cells[S.selected].classList.remove("rtm-selected");
    if (S.markers[S.selected]) S.markers[S.selected].classList.remove("rtm-gmarker-selected");
    S.selected = k;
    cells[k].classList.add("rtm-selected");
    if (S.markers[k]) S.markers[k].classList.add("rtm-gmarker-selected");   // the selected seed's dot: red, larger
    const map = $(".rtm-map");
    if (window.Plotly && map.data) {  // the selected seed's path on top, in red
      const styles = pathStyles(v.seeds.length, k);
      window.Plotly.restyle(map, { "line.color": styles.map((st) => st.color), "line.width": styles.map((st) => st.width) });
    }
    if (!open) return;
    const typed = setNumber("rtm-seed", v.seeds[k]);
    const generate = document.querySelector("#rtm-generate");
    if (typed && generate) {
      // After the seed box has taken the value (its input event runs first), press Generate.
      setTimeout(() => generate.click(), 50);
      $(".rtm-gnote").textContent = `Seed ${v.seeds[k]} opened in the viewer above.`;
      document.querySelector("#rtm-viewer").scrollIntoView({ behavior: "smooth", block: "nearest" });
    }
  }

  // Each seed's path on the map: the selected one red and wide, the others faint in the theme's ink.
  function pathStyles(count, selected) {
    const faint = chartInk().faint;
    return Array.from({ length: count }, (_, j) => (j === selected ? { color: "#d62728", width: 3 } : { color: faint, width: 1 }));
  }

  function drawMap(Plotly, v, a) {
    const map = $(".rtm-map");
    const xs = v.xy.flat().map((p) => p[0]), ys = v.xy.flat().map((p) => p[1]);
    const styles = pathStyles(v.xy.length, S.selected);
    const traces = v.xy.map((path, k) => ({
      x: path.map((p) => p[0]), y: path.map((p) => p[1]), type: "scatter", mode: "lines", line: styles[k],
      name: `seed ${v.seeds[k]}`, hovertemplate: `seed ${v.seeds[k]}<extra></extra>`,
    }));
    const layout = mapLayout(a, xs, ys, `${v.reference_method} of w: every seed's path<br>(red: the selected one)`, v.reference_method);
    Plotly.newPlot(map, traces, layout, { displayModeBar: false, responsive: true }).then(() => {
      const place = () => {
        const fl = map._fullLayout;
        if (S.v !== v || !fl || !fl.xaxis || !fl.xaxis.l2p) return;
        S.mapPos = v.xy.map((path) => path.map(([x, y]) => [fl._size.l + fl.xaxis.l2p(x), fl._size.t + fl.yaxis.l2p(y)]));
        show(S.step);
      };
      place();
      map.on("plotly_afterplot", place);
      map.on("plotly_click", (ev) => { if (ev.points[0]) select(ev.points[0].curveNumber, false); });
    });
  }

  const SKELETON = `
    <div class="rtm-gsummary"></div>
    <div class="rtm-controls">
      <button class="rtm-prev" type="button" aria-label="previous step">−1</button>
      <button class="rtm-play" type="button">▶ play</button>
      <button class="rtm-next" type="button" aria-label="next step">+1</button>
      <input class="rtm-slider" type="range" min="0" step="1" aria-label="refinement step of every seed">
    </div>
    <div class="rtm-caption" aria-live="polite"></div>
    <div class="rtm-top">
      <div class="rtm-gcells"></div>
      <div class="rtm-mapbox"><div class="rtm-map"></div><div class="rtm-gmarkers"></div></div>
    </div>
    <div class="rtm-gnote" aria-live="polite"></div>`;

  // Cells a whole multiple of the frame's pixels (a 32 px frame in a 98 px cell scaled unevenly:
  // some pixels drawn 3 px wide, some 4): as many columns as fit at the frame's own size at least
  // (up to a square grid), each as large a multiple as fits; on a screen too narrow for even
  // that, half the frame's size. The cell's 2 px border on each side comes on top.
  function fitCells(cells, N, R) {
    const gap = 4, border = 4, width = cells.clientWidth || 420;
    const cols = Math.max(1, Math.min(Math.ceil(Math.sqrt(N)), Math.floor((width + gap) / (R + border + gap))));
    const fits = Math.floor((width - gap * (cols - 1)) / cols - border);
    const size = fits >= R ? Math.floor(fits / R) * R : Math.max(8, Math.floor(fits / (R / 2)) * (R / 2));
    cells.style.gridTemplateColumns = `repeat(${cols}, ${size + border}px)`;
  }

  function render() {
    stop();
    const root = $(".rtm-groot");
    if (!root) return;
    const v = props.value;
    if (window.Plotly) root.querySelectorAll(".js-plotly-plot").forEach((p) => window.Plotly.purge(p));
    S.v = v; S.mapPos = null; S.selected = 0; S.markers = [];
    if (!v || !v.seeds) {
      root.textContent = "";
      const empty = make("div", "rtm-empty");
      empty.textContent = "Choose a first seed and how many, then press Show grid.";
      root.append(empty);
      return;
    }
    const n = v.num_steps, N = v.seeds.length;
    root.innerHTML = SKELETON;  // a constant: no data in it
    root.dataset.seeds = String(N);
    if (!linkPending()) writeUrl({ grid: `${v.seeds[0]}:${N}` });   // a copied link opens the grid too
    const distinct = v.distinct_nearest === null ? ""
      : ` Their final frames' nearest training images: ${v.distinct_nearest} distinct of ${N} (how diverse the seeds end up).`;
    $(".rtm-gsummary").textContent = `${N} seed${N === 1 ? "" : "s"} of ${v.checkpoint}, ${n} step${n === 1 ? "" : "s"}.${distinct} Click a cell to open its seed in the viewer.`;
    $(".rtm-slider").max = String(n);
    const cells = $(".rtm-gcells");
    cells.style.setProperty("--rtm-cols", String(Math.ceil(Math.sqrt(N))));
    requestAnimationFrame(() => fitCells(cells, N, v.resolution));   // once laid out: its width is known
    v.seeds.forEach((seed, k) => {
      const near = v.nearest[k] ? ` · nearest: ${v.nearest[k].label} (${v.nearest[k].distance})` : "";
      const b = make("button", "rtm-gcell", { type: "button", "data-seed": seed, title: `seed ${seed}${near}`,
                                              "aria-label": `open seed ${seed} in the viewer` });
      const pic = make("div", "rtm-gpic");
      pic.style.backgroundImage = `url("${v.sprite_url}")`;
      pic.style.backgroundSize = `${N * 100}% ${(n + 1) * 100}%`;
      pic.style.setProperty("--rtm-x", `${N > 1 ? (k / (N - 1)) * 100 : 0}%`);
      const cap = make("span");
      cap.textContent = String(seed);
      b.append(pic, cap);
      b.addEventListener("click", () => select(k, true));
      cells.append(b);
      const m = make("div", "rtm-gmarker");
      $(".rtm-gmarkers").append(m);
      S.markers.push(m);
    });
    cells.children[0].classList.add("rtm-selected");
    S.markers[0].classList.add("rtm-gmarker-selected");
    $(".rtm-slider").addEventListener("input", (e) => userStep(Number(e.target.value)));
    $(".rtm-prev").addEventListener("click", () => userStep(S.step - 1));
    $(".rtm-next").addEventListener("click", () => userStep(S.step + 1));
    $(".rtm-play").addEventListener("click", play);
    S.step = n;
    show(n);
    requestAnimationFrame(() => setTimeout(() => whenPlotly(v.plotly_url, (Plotly) => {
      if (S.v !== v || !v.assets_url) return;
      assets(v.assets_url).then((a) => { if (S.v === v) drawMap(Plotly, v, a); })
        .catch((err) => { $(".rtm-map").textContent = `The map could not be drawn (${err.message}).`; });
    }), 0));
  }

  window.addEventListener("resize", () => {
    const cells = $(".rtm-gcells");
    if (S.v && S.v.seeds && cells) fitCells(cells, S.v.seeds.length, S.v.resolution);
  });
  watch("value", render);
  render();
})();
