// Reach into the recursion, the viewer's part: pick (token, step) on the token heatmap for
// the Intervene form, and lay the red mask of changed pixels over an intervention's frames.

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

// An intervention's payload has `changed_mask`: one strip of n + 1 masks (red where the frame
// differs from the original's at the same step). Anything else hides the mask and its toggle.
function setupMask(mask, toggle, v, n) {
  if (!v.changed_mask) {
    mask.style.display = "none";
    toggle.style.display = "none";
    return;
  }
  mask.style.backgroundImage = `url("${v.changed_mask}")`;
  mask.style.backgroundSize = `100% ${(n + 1) * 100}%`;
  toggle.querySelector("input").addEventListener("change", (e) => { mask.style.display = e.target.checked ? "block" : "none"; });
}

function placeMask(mask, v, i, n) {
  if (v.changed_mask) mask.style.backgroundPosition = `0 ${n > 0 ? (i / n) * 100 : 0}%`;
}
