// Reach into the recursion, the viewer's part: pick (token, step) on the token heatmap for
// the Intervene form, and show what an intervention changed: a mask, a wipe, a sparkline.
// Uses: $, setNumber, percentText (common.js).

// The heatmap cell under a pointer event: rows are tokens 0..T-1, columns steps 1..S.
function heatCell(canvas, e, T, S) {
  const box = canvas.getBoundingClientRect();
  return { token: Math.min(T - 1, Math.floor(((e.clientY - box.top) / box.height) * T)),
           step: Math.min(S, Math.floor(((e.clientX - box.left) / box.width) * S) + 1) };
}

function enablePicking(canvas, cap, about, T, S) {
  cap.textContent = `${about} Rows: tokens 0 (top) to ${T - 1}. Click a cell to pick that token and step for an intervention.`;
  canvas.style.cursor = "crosshair";
  canvas.addEventListener("click", (e) => {
    const { token, step } = heatCell(canvas, e, T, S);
    const picked = setNumber("rtm-int-token", token) && setNumber("rtm-int-step", step);
    cap.textContent = picked ? `${about} Picked token ${token} from step ${step}: choose freeze, knock out or swap under "Reach into the recursion" and press Intervene.`
                             : about;
  });
}

// An intervention's payload has `changed_mask`: one strip of n + 1 masks (cyan where the frame
// differs from the original's at the same step), the original's frames for the wipe, and the
// changed share per step for the sparkline. Anything else hides the panel of those controls.
function setupMask(mask, panel, v, n) {
  if (!v.changed_mask) {
    mask.style.display = "none";
    panel.style.display = "none";
    return;
  }
  mask.style.backgroundImage = `url("${v.changed_mask}")`;
  mask.style.backgroundSize = `100% ${(n + 1) * 100}%`;
  panel.querySelector(".rtm-mask-box").addEventListener("change", (e) => { mask.style.display = e.target.checked ? "block" : "none"; });
}

function placeMask(mask, v, i, n) {
  if (v.changed_mask) mask.style.backgroundPosition = `0 ${n > 0 ? (i / n) * 100 : 0}%`;
}

// The wipe: the original's frame over the intervened one, cut at the range's position (0: none of it).
function setupWipe(v) {
  const before = $(".rtm-before"), range = $(".rtm-wipe-range");
  if (!v.original_frames) { before.style.display = "none"; return; }
  const cut = () => { before.style.clipPath = `inset(0 ${100 - Number(range.value)}% 0 0)`; };
  range.addEventListener("input", cut);
  cut();
}

// The changed share of the pixels at every step, as a sparkline, with the sentence it rests on.
function drawSpark(v) {
  const canvas = $(".rtm-spark"), cap = $(".rtm-sparkcap");
  if (!v.changed_fraction) return;
  const f = v.changed_fraction, n = f.length - 1, peak = Math.max(...f, 1e-9);
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#0891b2";
  ctx.fillStyle = "rgba(8,145,178,0.25)";
  ctx.lineWidth = 2;
  ctx.beginPath();
  f.forEach((x, k) => { const px = n ? (k / n) * (w - 2) + 1 : w / 2, py = h - 2 - (x / peak) * (h - 4); k ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
  ctx.stroke();
  ctx.lineTo(w - 1, h - 1); ctx.lineTo(1, h - 1); ctx.closePath(); ctx.fill();
  cap.textContent = `Pixels that differ from the original, per step (sparkline; its top is ${percentText(peak)}). ${v.change_summary || ""}`;
}

// The cell the intervention reached into, outlined on the token heatmap (token row, step column).
function markCell(cell, v, T, S) {
  const at = v.intervened;
  if (!at) { cell.style.display = "none"; return; }
  const step = Math.max(1, at.step);   // from step 0: the start is changed, seen from column 1 on
  cell.style.display = "block";
  cell.style.left = `${((step - 1) / S) * 100}%`;
  cell.style.width = `${100 / S}%`;
  cell.style.top = `${(at.token / T) * 100}%`;
  cell.style.height = `${100 / T}%`;
}
