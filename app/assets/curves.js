// The metric curves of the checkpoint (eval.json), drawn with the page's one plotly.js.
// `props.value` is plotly JSON built in app/ui.py (eval_figure), or null when there is no eval.json.
(() => {
  const box = () => element.querySelector(".rtm-curves");

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
    whenPlotly(() => window.Plotly.newPlot(el, fig.data, fig.layout, { displayModeBar: false, responsive: true }));
  }

  watch("value", render);
  render();
})();
