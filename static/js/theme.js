// Applies the saved theme before the first paint (loaded in <head>, not a module, on purpose).
(function () {
  try {
    var saved = localStorage.getItem("theme");
    if (saved === "light" || saved === "dark") document.documentElement.dataset.theme = saved;
  } catch (e) { /* storage may be disabled; the system theme applies */ }
})();
