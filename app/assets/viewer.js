// The refinement viewer. Runs in the browser as gr.HTML's js_on_load does: `element` is the
// component, `props.value` the payload from app/service.py (every frame as a data URI, the
// path on the map, how much each token and pixel changed per step). Scrubbing, play, hover
// and click never talk to the server.
//
// Speed: a slider move only writes a few DOM properties (image source, caption, three
// overlay positions), coalesced to one animation frame; plotly draws once per trajectory and
// is never called while scrubbing. The map's reference cloud is painted on a canvas and laid
// under the plot as one image. Safety: data goes into the page as text (textContent,
// attributes), never as markup. The map is drawn by map.js, the intervention's picking and
// mask are intervention.js, the diagram and the words explain.js; app/ui.py puts them in front.
// Uses: $, make, assets, whenPlotly, viridis, stepper, percentText, writeUrl, urlStep, linkPending,
// copyLink, callApi (common.js); themed (theme.js); buildSchema, showSchema, buildGlossary (explain.js);
// drawTrajectoryMap, drawPathEnd, beyondTrace, mapKey (map.js); heatCell, enablePicking, setupMask,
// placeMask, setupWipe, drawSpark, markCell (intervention.js).
(() => {
  const S = { v: null, step: 0, pending: -1, raf: 0, playing: false, playStart: 0, playFrom: 0,
              mapPos: null, barPos: null, heatReady: false, thumbs: [] };
  const { request, stop, play } = stepper(S, show, () => S.v.frames.length - 1);
  let wantBeyond = false;   // the run-on overlay stays on for the next seed once asked for
  // --- one step on screen: only property writes --------------------------------------------
  function show(i) {
    const v = S.v;
    const n = v.frames.length - 1;
    i = Math.max(0, Math.min(n, i));
    const prev = S.step;
    S.step = i;
    $(".rtm-root").dataset.step = String(i);
    $(".rtm-frame").src = v.frames[i];
    $(".rtm-frame").alt = `the image after refinement step ${i} of ${n}`;
    const slider = $(".rtm-slider");
    if (slider.value !== String(i)) slider.value = String(i);
    const differs = v.changed_fraction ? ` ${percentText(v.changed_fraction[i])} of the pixels differ from the original's at this step.` : "";
    $(".rtm-caption").textContent = `Step ${i} of ${n}. ${v.captions ? v.captions[i] : ""}${differs}`;
    placeMask($(".rtm-mask"), v, i, n);
    showWipe(v, i);
    showSpark(i);
    showSchema(S.schema, v, i);
    if (S.tailPos) placeTail(i);
    if (S.isMain) remember(i);
    if (S.thumbs[prev]) S.thumbs[prev].classList.remove("rtm-current");
    if (S.thumbs[i]) S.thumbs[i].classList.add("rtm-current");
    placeMarker(i);
    placeBar(i);
    placeHeat(i);
    showDiff(i);
    // The metric curves (curves.js) mark the main viewer's step.
    if (S.isMain) window.dispatchEvent(new CustomEvent("rtm-shown-step", { detail: { step: i } }));
  }

  function placeMarker(i) {
    const m = $(".rtm-marker");
    if (!S.mapPos) { m.style.display = "none"; return; }
    const [x, y] = S.mapPos[i];
    m.style.display = "block";
    m.style.transform = `translate(${x}px, ${y}px)`;
  }

  function placeBar(i) {
    const m = $(".rtm-barmark");
    if (!S.barPos || i < 1) { m.style.display = "none"; return; }
    const b = S.barPos;
    m.style.display = "block";
    m.style.transform = `translate(${b.x[i - 1] - b.w / 2}px, ${b.top}px)`;
  }

  function placeHeat(i) {
    const m = $(".rtm-heatmark");
    const n = S.v.frames.length - 1;
    if (!S.heatReady || i < 1) { m.style.display = "none"; return; }
    m.style.display = "block";
    m.style.left = `${((i - 1) / n) * 100}%`;
    m.style.width = `${100 / n}%`;
  }

  function showDiff(i) {
    const v = S.v, d = $(".rtm-diff"), cap = $(".rtm-diffcap");
    const n = v.frames.length - 1;
    if (i < 1 || !v.pixel_change) {
      d.style.visibility = "hidden";
      cap.textContent = "Pixel change: step 0 has no previous frame.";
      return;
    }
    d.style.visibility = "visible";
    d.style.backgroundPosition = `0 ${n > 1 ? ((i - 1) / (n - 1)) * 100 : 0}%`;
    cap.textContent = `Pixel change from step ${i - 1} to ${i}, per pixel, on one square-root scale for all steps (half as bright = a quarter of the change): the brightest colour is ${(100 * v.pixel_change_peak).toFixed(0)}% of the full 0-255 range, this seed's largest change at any step.`;
  }

  function placeTail(i) {   // the ring on the magnified end of the path, for the steps it shows
    const m = $(".rtm-tailmarker"), t = S.v.tail;
    if (!S.tailPos || !t || i < t.from_step) { m.style.display = "none"; return; }
    const [x, y] = S.tailPos[i - t.from_step];
    m.style.display = "block";
    m.style.transform = `translate(${x}px, ${y}px)`;
  }

  function showWipe(v, i) {   // the original's frame over the left part of the intervened one
    if (!v.original_frames) return;
    const before = $(".rtm-before");
    if (before.dataset.step !== String(i)) { before.src = v.original_frames[i]; before.dataset.step = String(i); }
  }

  function showSpark(i) {
    const m = $(".rtm-sparkmark"), v = S.v;
    if (!v.changed_fraction) return;
    const n = v.changed_fraction.length - 1;
    m.style.left = `${n > 0 ? (i / n) * 100 : 0}%`;
  }

  // The view's state in the address bar (replaceState: no history entry per step), written once
  // the step stops changing, so that a copied link opens this seed at this step.
  function remember(i) {
    if (linkPending()) return;
    clearTimeout(S.urlTimer);
    S.urlTimer = setTimeout(() => writeUrl({ checkpoint: S.v.checkpoint, seed: S.v.seed,
                                             steps: S.v.frames.length - 1, step: i }), 250);
  }

  // Step 0's picture is the checkpoint's shared start where the payload leaves it out (null): it
  // comes once per checkpoint, with the assets (a blank pixel until they arrive).
  function fillStart(v) {
    if (v.frames[0] !== null || !v.assets_url) return;
    const blank = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";
    v.frames[0] = blank;
    if (v.original_frames && v.original_frames[0] === null) v.original_frames[0] = blank;
    assets(v.assets_url).then((a) => {
      if (!a.start_frame) return;
      if (v.original_frames && v.original_frames[0] === blank) v.original_frames[0] = a.start_frame;
      v.frames[0] = a.start_frame;
      if (S.v !== v) return;
      const thumb = S.thumbs[0] && S.thumbs[0].querySelector("img");
      if (thumb) thumb.src = a.start_frame;
      if (S.step === 0) show(0);
    }).catch(() => {});
  }

  function userStep(i) {  // a step the user chose here: stop playing, follow, tell a linked viewer
    window.__rtmUrlStepUsed = true;
    stop();
    request(i);
    if (window.__rtmLinked) window.dispatchEvent(new CustomEvent("rtm-step", { detail: { from: element, step: i } }));
  }

  // --- drawn once per trajectory ------------------------------------------------------------
  function drawHeat(v) {
    const canvas = $(".rtm-heat"), cap = $(".rtm-heatcap");
    if (!v.token_change || !v.token_change.length) {
      canvas.style.display = "none";
      $(".rtm-heatkey").style.display = "none";
      $(".rtm-heatkey-hi").parentElement.style.display = "none";
      cap.textContent = v.mapper === "mlp" ? "Token change: a one-pass MLP has no tokens; its one step is the whole network."
                                           : "Token change: no steps to show.";
      return;
    }
    const S_ = v.token_change.length, T = v.token_change[0].length;
    canvas.width = S_;
    canvas.height = T;
    canvas.style.height = `${Math.min(160, T * 8)}px`;
    const ctx = canvas.getContext("2d"), img = ctx.createImageData(S_, T);
    const peak = Math.max(1e-9, ...v.token_change.flat());
    v.token_change.forEach((row, h) => row.forEach((val, t) => {
      const [r, g, b] = viridis(val / peak), o = 4 * (t * S_ + h);
      img.data[o] = r; img.data[o + 1] = g; img.data[o + 2] = b; img.data[o + 3] = 255;
    }));
    ctx.putImageData(img, 0, 0);
    S.heatReady = true;
    $(".rtm-heatkey-hi").textContent = `${peak.toFixed(2)} moved`;   // the colour key's bright end
    $(".rtm-axis-lo").textContent = "step 1";   // columns; rows are tokens 0 (top) to T-1 (bottom)
    $(".rtm-axis-hi").textContent = `step ${S_}`;
    canvas.addEventListener("mousemove", (e) => {  // which cell the pointer is on, and its value
      const { token, step } = heatCell(canvas, e, T, S_);
      canvas.title = `token ${token}, step ${step}: moved ${v.token_change[step - 1][token].toFixed(2)}`;
    });
    markCell($(".rtm-heatcell"), v, T, S_);
    const about = `Token change: how far each of the ${T} latent tokens (rows) moved at each step (columns, 1 to ${S_}); brightest = ${peak.toFixed(2)}.`;
    enablePicking(canvas, cap, about, T, S_);
  }

  // A log axis when the steps' moves span more than 30x (the first step moves hundreds of
  // times more than the last): on a linear axis the late bars were invisible.
  function wantsLog(d) {
    const moved = d.filter((x) => x > 0);
    return moved.length > 1 && Math.max(...moved) / Math.min(...moved) > 30;
  }

  function dispAxis(log) {
    return log ? { type: "log", dtick: 1, exponentformat: "none", title: { text: "moved (log scale)" } }
               : { type: "linear", dtick: null, title: { text: "moved" } };
  }

  function drawDisplacement(Plotly, v) {
    const el = $(".rtm-disp"), box = $(".rtm-log-box");
    const h = v.displacement.map((_, k) => k + 1);
    const log = box.checked = wantsLog(v.displacement);
    box.onchange = () => Plotly.relayout(el, { yaxis: { ...themed({ yaxis: dispAxis(box.checked) }).yaxis } });
    Plotly.newPlot(el, [
      { x: h, y: v.displacement, type: "bar", hovertemplate: "step %{x}: w moved %{y:.3g}<extra></extra>",
        marker: { color: h.map((k) => (k > v.trained_steps ? "#b45309" : "#7f7f7f")) } },
    ], themed({
      margin: { l: 50, r: 10, t: 30, b: 35 }, height: 180,
      title: { text: v.displacement.length > v.trained_steps ? "How far w moved at each step (dotted: the trained H)" : "How far w moved at each step", font: { size: 13 } },
      yaxis: dispAxis(log),
      xaxis: { title: { text: "step h" }, dtick: h.length > 16 ? 4 : 1 },
      shapes: v.displacement.length > v.trained_steps ? [{ type: "line", x0: v.trained_steps + 0.5, x1: v.trained_steps + 0.5,
                                                           yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#1f77b4" } }] : [],
    }), { displayModeBar: false, responsive: true }).then(() => {
      const place = () => {
        const fl = el._fullLayout;
        if (S.v !== v || !fl || !fl.xaxis || !fl.xaxis.l2p) return;
        const x = h.map((k) => fl._size.l + fl.xaxis.l2p(k));
        const w = h.length > 1 ? Math.abs(x[1] - x[0]) : fl._size.w / 2;
        S.barPos = { x, w, top: fl._size.t };
        const mark = $(".rtm-barmark");
        mark.style.width = `${w}px`;
        mark.style.height = `${fl._size.h}px`;
        placeBar(S.step);
      };
      place();
      el.on("plotly_afterplot", place);
    });
  }

  function fillNearest(v, a) {
    const box = $(".rtm-nearest");
    box.textContent = "";
    if (!v.nearest || !v.nearest.length || !a.training_images) return;
    box.append(Object.assign(make("span"), {
      textContent: "Nearest training images to the final frame (pixel RMS distance, 0-255; near-copies would mean memorisation):" }));
    for (const n of v.nearest) {
      const fig = make("figure");
      const pic = make("div", "rtm-train", { role: "img", "aria-label": `training image: ${n.label}` });
      pic.style.backgroundImage = `url("${a.training_images}")`;
      pic.style.backgroundSize = `100% ${a.training_count * 100}%`;
      pic.style.backgroundPosition = `0 ${a.training_count > 1 ? (n.index / (a.training_count - 1)) * 100 : 0}%`;
      const cap = make("figcaption");
      cap.textContent = `${n.label} · ${n.distance}`;
      fig.append(pic, cap);
      box.append(fig);
    }
  }

  const SKELETON = `
    <div class="rtm-title"></div>
    <div class="rtm-schema" role="group" aria-label="the model, box by box"></div>
    <div class="rtm-glossary"></div>
    <div class="rtm-explain" aria-live="polite"></div>
    <div class="rtm-top">
      <div class="rtm-left">
        <div class="rtm-framebox"><img class="rtm-frame" alt=""><img class="rtm-before" alt="the original at this step"><div class="rtm-mask" aria-hidden="true"></div></div>
        <div class="rtm-intervened">
          <label class="rtm-masktoggle"><input type="checkbox" class="rtm-mask-box" checked> mark in cyan the pixels that differ from the original</label>
          <label class="rtm-wipe">wipe: intervened ◀ <input type="range" class="rtm-wipe-range" min="0" max="100" value="0" aria-label="drag right to uncover the original from the left"> ▶ original</label>
          <div class="rtm-sparkbox"><canvas class="rtm-spark" width="160" height="28" aria-hidden="true"></canvas><div class="rtm-sparkmark"></div></div>
          <div class="rtm-sparkcap"></div>
        </div>
        <div class="rtm-caption" aria-live="polite"></div>
        <div class="rtm-controls">
          <button class="rtm-prev" type="button" aria-label="previous step">−1</button>
          <button class="rtm-play" type="button">▶ play</button>
          <button class="rtm-next" type="button" aria-label="next step">+1</button>
          <input class="rtm-slider" type="range" min="0" step="1" aria-label="refinement step">
        </div>
        <div class="rtm-keys">Keys: space plays, ← → step. <button class="rtm-copy" type="button">🔗 copy a link to this view</button></div>
        <label class="rtm-link"><input type="checkbox" class="rtm-link-box"> link the sliders of A and B</label>
      </div>
      <div class="rtm-inside">
        <div class="rtm-heatbox"><canvas class="rtm-heat" aria-label="token change per step"></canvas><div class="rtm-heatmark"></div><div class="rtm-heatcell"></div></div>
        <div class="rtm-axis"><span class="rtm-axis-lo"></span><span class="rtm-axis-hi"></span></div>
        <div class="rtm-heatkey" aria-hidden="true"></div>
        <div class="rtm-axis"><span>0</span><span class="rtm-heatkey-hi"></span></div>
        <div class="rtm-heatcap"></div>
        <div class="rtm-diff" role="img" aria-label="pixel change from the previous step"></div>
        <div class="rtm-scale" aria-hidden="true"></div>
        <div class="rtm-axis rtm-scale-axis"><span>0</span><span class="rtm-scale-hi"></span></div>
        <div class="rtm-diffcap"></div>
      </div>
      <div class="rtm-mapbox">
        <div class="rtm-map"></div><div class="rtm-marker"></div><img class="rtm-preview" alt="">
        <div class="rtm-mapkey"></div>
        <label class="rtm-beyond"><input type="checkbox" class="rtm-beyond-box"> run this seed on to 64 steps and draw the rest of its path</label>
        <div class="rtm-beyondcap" aria-live="polite"></div>
        <div class="rtm-tailbox"><div class="rtm-tail"></div><div class="rtm-tailmarker"></div></div>
      </div>
    </div>
    <div class="rtm-strip"></div>
    <div class="rtm-nearest"></div>
    <div class="rtm-dispbox"><label class="rtm-log"><input type="checkbox" class="rtm-log-box"> log scale</label><div class="rtm-disp"></div><div class="rtm-barmark"></div></div>`;

  function render() {
    stop();
    const root = $(".rtm-root");
    if (!root) return;
    const v = props.value;
    if (window.Plotly) root.querySelectorAll(".js-plotly-plot").forEach((p) => window.Plotly.purge(p));
    S.v = v; S.mapPos = null; S.barPos = null; S.heatReady = false; S.tailPos = null; S.schema = null; S.beyond = null;
    if (!v || !v.frames) {
      root.textContent = "";
      const empty = make("div", "rtm-empty");
      empty.textContent = "Pick a seed and press Generate.";
      root.append(empty);
      return;
    }
    const n = v.frames.length - 1;
    fillStart(v);
    root.innerHTML = SKELETON;  // a constant: no data in it
    S.isMain = !!root.closest("#rtm-viewer");
    root.dataset.seed = String(v.seed);  // which trajectory is shown: tests and scripts wait on it
    root.dataset.checkpoint = v.checkpoint;  // and what the GIF and the walk start from
    root.dataset.steps = String(n);
    // The compare view (not an intervention's result) is part of the view a link restores.
    if (!S.isMain && !v.intervention && !linkPending()) writeUrl({ compare: `${v.checkpoint}:${n}` });
    $(".rtm-title").textContent = v.title || "";
    // An intervention's result opens in the compare view: bring it into sight (on a phone it
    // is far above the button that asked for it).
    if (v.intervention && root.closest("#rtm-viewer-b")) root.scrollIntoView({ behavior: "smooth", block: "start" });
    setupMask($(".rtm-mask"), $(".rtm-intervened"), v, n);
    setupWipe(v);
    drawSpark(v);
    if (!S.isMain) root.querySelectorAll(".rtm-schema, .rtm-glossary, .rtm-explain").forEach((e) => e.remove());
    else {
      S.schema = buildSchema($(".rtm-schema"), $(".rtm-explain"), v);
      buildGlossary($(".rtm-glossary"), $(".rtm-explain"));
      $(".rtm-explain").textContent = "Hover or tap a box or a word to see what it is.";
    }
    $(".rtm-strip").classList.toggle("rtm-strip-many", n > 16);
    $(".rtm-slider").max = String(n);
    $(".rtm-link-box").checked = !!window.__rtmLinked;
    const strip = $(".rtm-strip");
    v.frames.forEach((f, k) => {
      const b = make("button", "rtm-thumb", { type: "button", "data-step": k, title: `step ${k}`, "aria-label": `show step ${k}` });
      b.append(make("img", "", { src: f, alt: `step ${k}` }));
      b.addEventListener("click", () => userStep(k));
      strip.append(b);
    });
    S.thumbs = Array.from(strip.children);  // the filmstrip, looked up once, not on every step
    const diff = $(".rtm-diff");
    if (v.pixel_change) {
      $(".rtm-scale-hi").textContent = `${(100 * v.pixel_change_peak).toFixed(0)}% of 255`;
      diff.style.backgroundImage = `url("${v.pixel_change}")`;
      diff.style.backgroundSize = `100% ${n * 100}%`;
    }
    $(".rtm-slider").addEventListener("input", (e) => userStep(Number(e.target.value)));
    $(".rtm-prev").addEventListener("click", () => userStep(S.step - 1));
    $(".rtm-next").addEventListener("click", () => userStep(S.step + 1));
    $(".rtm-play").addEventListener("click", () => {   // linked: the other viewer plays (or pauses) along
      play();
      if (window.__rtmLinked) window.dispatchEvent(new CustomEvent("rtm-play", { detail: { from: element, playing: S.playing } }));
    });
    $(".rtm-link-box").addEventListener("change", (e) => {
      window.__rtmLinked = e.target.checked;
      document.querySelectorAll(".rtm-link-box").forEach((box) => { box.checked = e.target.checked; });
    });
    $(".rtm-copy").addEventListener("click", () => copyLink($(".rtm-copy")));
    $(".rtm-beyond-box").addEventListener("change", (e) => { wantBeyond = e.target.checked; toggleBeyond(wantBeyond); });
    // An intervention opens on the step it changed most (its last step often differs in nothing:
    // the recursion healed it); a link with a step opens there, once.
    const asked = S.isMain ? urlStep(v) : null;
    const first = v.changed_fraction ? v.changed_fraction.indexOf(Math.max(...v.changed_fraction)) : asked ?? n;
    S.step = first;
    drawHeat(v);
    show(first);
    // Once per page, the first seed plays its refinement by itself (unless the visitor asked
    // for less motion): what the app is about, before anyone touches a control.
    if (S.isMain && !window.__rtmPlayedOnce && !matchMedia("(prefers-reduced-motion: reduce)").matches) {
      window.__rtmPlayedOnce = true;
      setTimeout(() => {
        if (S.v !== v || S.playing || S.step !== n || asked !== null) return;   // the visitor got there first
        root.dataset.autoplayed = "1";
        play();
      }, 600);
    }
    const frame = $(".rtm-frame");
    if (root.closest("#rtm-viewer") && !performance.getEntriesByName("rtm-first-frame").length) {
      // When the first image is decoded and painted: what bench_app reports as "first frame".
      frame.decode().catch(() => {}).then(() => requestAnimationFrame(() => setTimeout(() => {
        if (!performance.getEntriesByName("rtm-first-frame").length) performance.mark("rtm-first-frame");
      }, 0)));
    }
    // The plots after the first paint: the image never waits for plotly.
    requestAnimationFrame(() => setTimeout(() => whenPlotly(v.plotly_url, (Plotly) => {
      if (S.v !== v) return;  // a newer trajectory arrived meanwhile
      drawDisplacement(Plotly, v);
      if (!v.assets_url) return;
      assets(v.assets_url).then((a) => {
        if (S.v !== v) return;
        const hooks = {
          current: () => S.v === v,
          placed: (pos) => { S.mapPos = pos; placeMarker(S.step); },
          step: userStep,
        };
        drawTrajectoryMap(Plotly, element.querySelector(".rtm-map"), $(".rtm-preview"), v, a, hooks).then(() => {
          if (S.v === v && wantBeyond && v.frames.length - 1 < 64) { $(".rtm-beyond-box").checked = true; toggleBeyond(true); }
        });
        $(".rtm-mapkey").textContent = mapKey(v);
        drawPathEnd(Plotly, $(".rtm-tail"), $(".rtm-preview"), v, { ...hooks, placed: (pos) => { S.tailPos = pos; placeTail(S.step); } });
        fillNearest(v, a);
      }).catch((err) => { $(".rtm-map").textContent = `The map could not be drawn (${err.message}).`; });
    }), 0));
  }

  // Beyond H, asked for: the same seed run on to 64 steps on the server (the "beyond" API),
  // its path drawn over this one on the map, and what happened after this trajectory's end.
  function toggleBeyond(on) {
    const v = S.v, cap = $(".rtm-beyondcap"), map = element.querySelector(".rtm-map");
    if (!on) {
      cap.textContent = "";
      if (window.Plotly && map.data && map.data.length > 1) window.Plotly.deleteTraces(map, 1);
      return;
    }
    cap.textContent = "Running on to 64 steps…";
    callApi("beyond", [v.checkpoint, v.seed, v.frames.length - 1]).then((b) => {
      if (S.v !== v || !$(".rtm-beyond-box").checked) return;
      cap.textContent = b.summary;
      const img = make("img", "rtm-beyondimg", { src: b.frame, alt: `the image after ${b.to_step} steps` });
      cap.append(img);
      whenPlotly(v.plotly_url, (Plotly) => { if (map.data) Plotly.addTraces(map, beyondTrace(b)); });
    }).catch((err) => { cap.textContent = `Could not run on: ${err.message}`; });
  }

  // plotly's "responsive" follows the window only: when the compare view opens beside this one,
  // the column narrows with no window resize, so follow the column's width too.
  let lastWidth = 0;
  new ResizeObserver((entries) => {
    const width = Math.round(entries[0].contentRect.width);
    if (width === lastWidth || !window.Plotly) return;
    lastWidth = width;
    element.querySelectorAll(".js-plotly-plot").forEach((plot) => window.Plotly.Plots.resize(plot));
  }).observe(element);

  window.addEventListener("rtm-step", (e) => {
    if (e.detail.from !== element && window.__rtmLinked && S.v) { stop(); request(e.detail.step); }
  });
  window.addEventListener("rtm-play", (e) => {
    if (e.detail.from !== element && window.__rtmLinked && S.v && e.detail.playing !== S.playing) play();
  });
  // A new trajectory from the server (Generate, Enter, the dice, a grid cell) is brought into
  // view when its image is off screen: on a phone the image sits below the boxes that asked for it.
  function bringIntoView() {
    const box = $(".rtm-framebox");
    if (!S.isMain || !box) return;
    const r = box.getBoundingClientRect();
    if (r.top >= 0 && r.bottom <= window.innerHeight) return;
    const calm = matchMedia("(prefers-reduced-motion: reduce)").matches;
    box.scrollIntoView({ block: "center", behavior: calm ? "auto" : "smooth" });
  }
  // Keys for the main viewer, anywhere on the page but in a form field or on a button (where
  // space and the arrows already mean something): space plays or pauses, ← and → step.
  if (element.closest("#rtm-viewer") && !window.__rtmKeys) {
    window.__rtmKeys = true;
    document.addEventListener("keydown", (e) => {
      const t = e.target, typing = "input:not([type=checkbox]):not([type=radio]):not([type=button]), textarea, select, [role=slider], [role=listbox], [role=option], [role=combobox]";
      if (!S.v || e.altKey || e.ctrlKey || e.metaKey || t.isContentEditable || t.closest(typing)) return;
      if (e.key === " " && !t.closest("button, input, summary, a")) { e.preventDefault(); $(".rtm-play").click(); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); userStep(S.step - 1); }
      else if (e.key === "ArrowRight") { e.preventDefault(); userStep(S.step + 1); }
    });
  }
  // The same trajectory again (the page's load call answers a plain visit with "no change", which
  // can still reach here): keep what is on screen, its step and a pending autoplay.
  const same = (a, b) => a && b && a.title === b.title && a.frames && b.frames && a.frames.length === b.frames.length
                         && a.frames[a.frames.length - 1] === b.frames[b.frames.length - 1];
  watch("value", () => { if (same(props.value, S.v)) return; render(); bringIntoView(); });
  render();
})();
