// The monthly report (console/report_views.py): "Descargar PDF" opens the browser's print dialog, where
// "Guardar como PDF" saves it; report.css lays the page out on A4 for that.
(function () {
  "use strict";
  var button = document.getElementById("print-report");
  if (button) {
    button.addEventListener("click", function () { window.print(); });
  }
}());
