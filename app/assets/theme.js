// The charts' colours follow Gradio's theme. plotly.js paints white panels and dark ink whatever
// the page: in the dark theme (Gradio puts the class "dark" on the body, for ?__theme=dark or a
// dark system setting) that was a bright rectangle on a dark page. So every chart is drawn on a
// transparent background, with ink and grid lines taken from the theme.
function chartInk() {
  return document.body.classList.contains("dark")
    ? { text: "#e5e7eb", grid: "#3f4651", line: "#d1d5db", faint: "rgba(200,200,200,0.45)" }
    : { text: "#444444", grid: "#eeeeee", line: "#444444", faint: "rgba(90,90,90,0.45)" };
}

// `layout` with the theme's colours: transparent panels, the theme's ink, its grid on every axis.
function themed(layout) {
  const ink = chartInk(), out = { ...layout, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)" };
  out.font = { ...(layout.font || {}), color: ink.text };
  for (const key of Object.keys(layout).concat(["xaxis", "yaxis"])) {
    if (/^[xy]axis\d*$/.test(key)) out[key] = { ...(layout[key] || {}), gridcolor: ink.grid, zerolinecolor: ink.grid, linecolor: ink.grid };
  }
  if (layout.legend) out.legend = { ...layout.legend, bgcolor: "rgba(0,0,0,0)" };
  return out;
}
