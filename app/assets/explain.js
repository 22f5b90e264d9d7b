// What the viewer shows, in words: a schematic of the model that follows the slider, and a
// glossary. Every box and word says what it is on hover, keyboard focus or tap, in one line
// under the schematic (aria-live: a screen reader reads it on focus); a button's name stays its
// own word. Built with DOM calls; the texts are constants and numbers.
// Uses: make, viridis (common.js).

const GLOSSARY = {
  "z": "The seed's noise: a vector of random numbers drawn from the seed. The same seed gives the same z on any machine.",
  "token": "One of the small vectors RTM refines together (the heatmap's rows); the embedding of z is added to them in every inner cycle.",
  "H": "Outer steps the model was trained to run. You may run it for fewer or more: the recursion simply stops sooner or goes on.",
  "L": "Inner cycles per outer step: the shared block runs L times on a fast scratch state before it updates the tokens once.",
  "w": "The style vector read out of the tokens after every step; it sets the style of every layer of the decoder. All the image knows of the seed is w.",
  "UMAP": "A method that draws points from many dimensions on a flat map so that near stays near. The map's axes have no units: only nearness counts.",
  "precision": "The share of generated images that look like some training image (fall inside a real image's neighbourhood): fidelity.",
  "recall": "The share of training images that some generated image looks like: how much of the data the model reaches (diversity).",
  "density": "Like precision, but counts how many real neighbourhoods a sample falls in: about 1 when samples look like the data, above 1 when they crowd where real images are densest.",
  "coverage": "The share of training images with a generated image close by: diversity that is not fooled by outliers.",
  "FD": "Fréchet distance between the feature statistics of generated and training images (like FID, on EfficientNet-Lite0 features): lower is better.",
};

// The boxes of the schematic: [key, name, what it is]. An MLP has no tokens and no recursion.
function schemaBoxes(v) {
  if (v.mapper === "mlp") {
    return [["z", "noise z", GLOSSARY.z],
            ["mlp", "one-pass MLP", "The baseline: a stack of layers maps z to w in one pass. Nothing is refined; its one step is the whole network."],
            ["w", "style w", GLOSSARY.w],
            ["decoder", "decoder", "A StyleGAN-like image decoder: w sets the style of each layer. The same decoder for every step."],
            ["image", "image", "What the decoder makes of this step's w."]];
  }
  return [["z", "noise z", GLOSSARY.z],
          ["tokens", `${v.num_tokens} tokens`, `${v.shared_start ? `${v.num_tokens} latent tokens that start from a learned state every seed shares; the seed's z, embedded, is added in every inner cycle, which is how seeds come apart.` : `z embedded as ${v.num_tokens} latent tokens.`} The bars show which moved most at this step (one column of the heatmap: its colour says how far).`],
          ["block", "shared block", `One small network with the same weights at every step: each outer step runs it ${v.num_cycles} times on a fast state, then once on the tokens. ${v.trained_steps} steps is the trained model; the slider picks how many.`],
          ["w", "style w", GLOSSARY.w],
          ["decoder", "decoder", "A StyleGAN-like image decoder: w sets the style of each layer. The same decoder for every step; only w changes."],
          ["image", "image", "What the decoder makes of this step's w."]];
}

function buildSchema(box, explain, v) {
  box.textContent = "";
  const live = {};
  const tell = (text) => { explain.textContent = text; };
  schemaBoxes(v).forEach(([key, name, about], k) => {
    if (k) box.append(Object.assign(make("span", "rtm-arrow", { "aria-hidden": "true" }), { textContent: "→" }));
    const b = make("button", `rtm-box rtm-box-${key}`, { type: "button", title: about });
    b.append(Object.assign(make("b"), { textContent: name }));
    const value = make("span", "rtm-live");
    b.append(value);
    for (const ev of ["mouseenter", "focus", "click"]) b.addEventListener(ev, () => tell(`${name}: ${about}`));
    live[key] = { box: b, value };
    box.append(b);
  });
  live.z.value.textContent = `seed ${v.seed}`;
  if (live.decoder) live.decoder.value.textContent = `${v.resolution}×${v.resolution} px`;
  if (live.mlp) live.mlp.value.textContent = "1 pass";
  if (live.tokens) {   // one bar per token, its height how far it moved at this step
    live.bars = Array.from({ length: v.num_tokens }, () => live.tokens.value.appendChild(make("i", "rtm-bar")));
  }
  if (live.image) {
    live.thumb = make("img", "rtm-live-img", { alt: "" });
    live.image.value.append(live.thumb);
  }
  return live;
}

// Step i on the schematic: property writes only (the slider calls this on every frame).
function showSchema(live, v, i) {
  if (!live) return;
  const n = v.frames.length - 1;
  if (live.block) {
    live.block.value.textContent = i === 0 ? "not run yet" : `step ${i} of ${n}${i > v.trained_steps ? " (past H)" : ""}`;
    // The loop lights once per step: two identical animations by name, swapped, restart it.
    live.block.box.classList.toggle("rtm-lit-a", i > 0 && i % 2 === 1);
    live.block.box.classList.toggle("rtm-lit-b", i > 0 && i % 2 === 0);
  }
  live.w.value.textContent = i === 0 ? "the start" : `moved ${+v.displacement[i - 1].toPrecision(3)}`;
  if (live.thumb) live.thumb.src = v.frames[i];
  if (live.bars && v.token_change && v.token_change.length) {
    // Heights within this step (which tokens moved most: late steps move little, and on the
    // heatmap's one scale their bars were all flat); colour on the heatmap's scale (how much).
    const col = i > 0 ? v.token_change[i - 1] : null;
    const peak = live.peak || (live.peak = Math.max(1e-9, ...v.token_change.flat()));
    const top = col ? Math.max(1e-9, ...col) : 1;
    live.bars.forEach((bar, t) => {
      bar.style.height = `${col ? Math.max(1, Math.round((col[t] / top) * 18)) : 1}px`;
      const [r, g, b] = viridis(0.25 + 0.75 * (col ? col[t] / peak : 0));   // never viridis' darkest: it vanished on the dark theme
      bar.style.background = `rgb(${r},${g},${b})`;
    });
  }
}

// "Words used here": each term's sentence on hover, focus or tap, in the same line as the boxes'.
function buildGlossary(box, explain) {
  box.textContent = "";
  box.append(Object.assign(make("span", "rtm-words"), { textContent: "Words:" }));
  for (const [term, about] of Object.entries(GLOSSARY)) {
    const b = make("button", "rtm-term", { type: "button", title: about });
    b.textContent = term;
    for (const ev of ["mouseenter", "focus", "click"]) b.addEventListener(ev, () => { explain.textContent = `${term}: ${about}`; });
    box.append(b);
  }
}
