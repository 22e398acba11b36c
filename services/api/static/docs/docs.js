// Starts Swagger UI on the document named by the viewer's data-spec (no inline script: CSP).
"use strict";

(function start() {
  const swagger = document.getElementById("swagger-ui");
  if (swagger && window.SwaggerUIBundle) {
    window.ui = window.SwaggerUIBundle({
      url: swagger.dataset.spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      showExtensions: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }
})();
