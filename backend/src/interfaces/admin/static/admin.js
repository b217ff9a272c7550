// The admin panel's CSRF half in the browser (no inline script: the page's CSP allows 'self').
// Every POST form gets a hidden `csrf_token` field and every jQuery request (the delete
// dialog) an X-CSRF-Token header, both carrying the token the page was rendered with (the
// `csrf-token` meta tag, equal to the csrf_token cookie).
// Loaded by a blocking script in the page's head, after that meta tag: the submit listener
// exists before any form does, so a form submitted before the page has finished loading (a
// quick user, a slow network) still carries its token.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";

  function arm(form) {
    if ((form.getAttribute("method") || "get").toLowerCase() !== "post") return;
    var field = form.querySelector('input[name="csrf_token"]');
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "csrf_token";
      form.appendChild(field);
    }
    field.value = token;
  }

  document.addEventListener("submit", function (event) { arm(event.target); }, true);
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form").forEach(arm);
    if (window.jQuery) { // loaded at the end of the body, before DOMContentLoaded
      window.jQuery(document).ajaxSend(function (_event, xhr, options) {
        if (!/^(GET|HEAD|OPTIONS)$/i.test(options.type || "GET")) {
          xhr.setRequestHeader("X-CSRF-Token", token);
        }
      });
    }
  });
})();
