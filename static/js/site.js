// Site-wide behaviour: theme toggle (system -> light -> dark) and language auto-submit.
const ORDER = ["auto", "light", "dark"];

function currentTheme() {
  return document.documentElement.dataset.theme || "auto";
}

for (const button of document.querySelectorAll("[data-theme-toggle]")) {
  const label = () => button.setAttribute("data-current", currentTheme());
  label();
  button.addEventListener("click", () => {
    const next = ORDER[(ORDER.indexOf(currentTheme()) + 1) % ORDER.length];
    document.documentElement.dataset.theme = next;
    try {
      if (next === "auto") localStorage.removeItem("theme");
      else localStorage.setItem("theme", next);
    } catch (e) { /* not persisted; still switched for this page */ }
    label();
  });
}

for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.submit());
}
