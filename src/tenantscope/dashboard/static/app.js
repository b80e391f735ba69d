// Draws the charts whose plotly specs the server embedded as JSON. Everything else on the
// dashboard works without this script.
(function () {
  "use strict";
  function draw() {
    if (typeof window.Plotly === "undefined") return;
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src || el.dataset.drawn) return;
      var spec = JSON.parse(src.textContent);
      el.dataset.drawn = "1";
      window.Plotly.newPlot(el, spec.data, spec.layout, {
        displayModeBar: false,
        responsive: true,
      }).then(function () {
        el.setAttribute("data-ready", "1");
      });
    });
  }
  if (document.readyState === "complete") draw();
  else window.addEventListener("load", draw);
})();
