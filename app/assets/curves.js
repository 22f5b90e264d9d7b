// The metric curves of the checkpoint (eval.json), drawn with the page's one plotly.js.
// `props.value` is plotly JSON built in app/ui.py (eval_figure), or null when there is no eval.json.
// A red line marks the step the main viewer shows (its "rtm-shown-step" events): one transform.
// Uses: themed (theme.js).
(() => {
  const box = () => element.querySelector(".rtm-curves");
  let step = null;

  function placeMark() {
    const el = box(), mark = element.querySelector(".rtm-curvemark");
    const fl = el && el._fullLayout;
    if (!mark) return;
    if (step === null) {  // the viewer drew its first step before this script listened
      const shown = document.querySelector("#rtm-viewer .rtm-root");
      if (shown && shown.dataset.step) step = Number(shown.dataset.step);
    }
    if (step === null || !fl || !fl.xaxis || !fl.xaxis.l2p || step < 1) { mark.style.display = "none"; return; }
    mark.style.display = "block";
    mark.style.height = `${fl._size.h}px`;
    mark.style.transform = `translate(${fl._size.l + fl.xaxis.l2p(step) - 1}px, ${fl._size.t}px)`;
  }
  window.addEventListener("rtm-shown-step", (e) => { step = e.detail.step; placeMark(); });

  function whenPlotly(fn, waited = 0) {
    if (window.Plotly) return fn();
    if (waited > 30000) {  // the viewer loads the page's plotly.js after its first frame
      box().textContent = "The metric curves need plotly.js, which did not load.";
      return;
    }
    setTimeout(() => whenPlotly(fn, waited + 50), 50);
  }

  function render() {
    const el = box();
    if (!el) return;
    const fig = props.value;
    if (window.Plotly) window.Plotly.purge(el);
    el.textContent = "";
    if (!fig || !fig.data) {
      el.textContent = "This checkpoint has no eval.json: no metric curves to show.";
      return;
    }
    whenPlotly(() => window.Plotly.newPlot(el, fig.data, themed(fig.layout), { displayModeBar: false, responsive: true }).then(() => {
      placeMark();
      el.on("plotly_afterplot", placeMark);
    }));
  }

  watch("value", render);
  render();
})();
