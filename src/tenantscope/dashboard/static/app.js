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

// The tenant selector's suggestions: as the user types, ask /api/tenant-suggestions and
// fill the box's <datalist> (values and labels set as text, never as markup); choosing a
// suggestion applies it. Without this script the box still works as a plain text box.
(function () {
  "use strict";
  var NO_TENANT = "(no tenant)";
  function setup(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) return;
    var timer = null;
    var asked = "";
    var shown = {};
    function fill(items) {
      while (list.firstChild) list.removeChild(list.firstChild);
      shown = {};
      items.forEach(function (item) {
        var option = document.createElement("option");
        var value = item.tenant_id === "" ? NO_TENANT : item.tenant_id;
        option.value = value;
        var label = [item.display_name, item.tier].filter(Boolean).join(" · ");
        if (label) option.label = label;
        shown[value] = true;
        list.appendChild(option);
      });
    }
    function ask() {
      var q = input.value;
      if (q === asked) return;
      asked = q;
      var url = input.getAttribute("data-suggest") + "?limit=10&q=" + encodeURIComponent(q);
      fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { items: [] }; })
        .then(function (body) { if (q === input.value) fill(body.items || []); })
        .catch(function () {});
    }
    input.addEventListener("focus", ask);
    input.addEventListener("input", function (ev) {
      // a suggestion picked from the list: apply it at once
      if (shown[input.value] && ev.inputType !== "insertText" && ev.inputType !== "deleteContentBackward") {
        input.form.requestSubmit ? input.form.requestSubmit() : input.form.submit();
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(ask, 120);
    });
  }
  function init() {
    document.querySelectorAll("input[data-suggest]").forEach(setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();


// The contact point form: show only the chosen kind's settings. Without this script every
// kind's box is shown and the server reads the chosen kind's only.
(function () {
  "use strict";
  function setup(select) {
    var form = select.form;
    function show() {
      form.querySelectorAll("fieldset[data-kind]").forEach(function (fs) {
        fs.hidden = fs.getAttribute("data-kind") !== select.value;
      });
    }
    select.addEventListener("change", show);
    show();
  }
  function init() {
    document.querySelectorAll("select[data-kind-select]").forEach(setup);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
