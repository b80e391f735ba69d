// Starts Swagger UI (vendor/swagger-ui-bundle.js, loaded before this file) on the API
// reference page, reading this server's OpenAPI schema. A file of its own because the
// page's Content-Security-Policy runs no inline script.
(function () {
  "use strict";
  var el = document.getElementById("swagger-ui");
  var bundle = window.SwaggerUIBundle;
  if (!el || typeof bundle === "undefined") return;
  window.ui = bundle({
    url: el.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the default asks a third-party validator
    presets: [bundle.presets.apis, bundle.SwaggerUIStandalonePreset],
  });
})();
