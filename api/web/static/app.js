// Progressive enhancement only: everything works without this script.
// It hides the budget inputs that the chosen budget does not use (the server ignores them anyway).
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  function sync() {
    var chosen = document.querySelector('input[name="budget"]:checked');
    if (!chosen) return;
    document.querySelectorAll(".budget [data-input]").forEach(function (el) {
      el.classList.toggle("off", el.getAttribute("data-input") !== chosen.value);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('input[name="budget"]').forEach(function (radio) {
      radio.addEventListener("change", sync);
    });
    sync();
  });
})();
