// The operator area: confirm before suspending, show the chosen provider's fields, propose the slug from the
// name, and run the two checks ("Enviar mensaje de prueba", "Probar conexión") without leaving the page.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  function showProvider(form) {
    var checked = form.querySelector('input[name="provider"]:checked');
    var chosen = checked ? checked.value : "";
    form.querySelectorAll(".provider-fields").forEach(function (block) {
      block.hidden = !chosen || block.getAttribute("data-provider").split(" ").indexOf(chosen) < 0;
    });
  }
  document.querySelectorAll("form").forEach(function (form) {
    if (!form.querySelector('input[type="radio"][name="provider"]')) { return; }
    form.querySelectorAll('input[name="provider"]').forEach(function (radio) {
      radio.addEventListener("change", function () { showProvider(form); });
    });
    showProvider(form);
  });

  var wizard = document.getElementById("tenant-form");
  if (wizard && !wizard.getAttribute("data-editing")) {
    var name = wizard.querySelector('input[name="name"]');
    var slug = wizard.querySelector('input[name="slug"]');
    var touched = slug.value !== "";
    slug.addEventListener("input", function () { touched = true; });
    name.addEventListener("input", function () {
      if (touched) { return; }
      slug.value = name.value.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
        .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64).replace(/-+$/, "");
    });
  }

  document.querySelectorAll("button[data-check]").forEach(function (button) {
    button.addEventListener("click", function () {
      var form = button.closest("form");
      var box = button.closest(".check-box, .step, td");
      var out = box.querySelector(".check-result");
      out.className = "check-result busy";
      out.textContent = "Probando…";
      button.disabled = true;
      fetch(button.getAttribute("data-check"), {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: {"X-CSRF-Token": csrf, "Accept": "application/json"}
      }).then(function (response) {
        return response.json().catch(function () { return {ok: false, text: "El servidor no respondió bien."}; });
      }).then(function (answer) {
        out.className = "check-result " + (answer.ok ? "ok" : "fail");
        out.textContent = answer.text || answer.error || "";
      }).catch(function () {
        out.className = "check-result fail";
        out.textContent = "No pudimos hablar con el servidor. Revisa tu conexión.";
      }).then(function () { button.disabled = false; });
    });
  });
})();
