// Site-wide behaviour: the theme toggle, language auto-submit, and "back" links on error pages.
import { gettext } from "./i18n.js";

const root = document.documentElement;
const darkSystem = window.matchMedia("(prefers-color-scheme: dark)");

function systemTheme() {
  return darkSystem.matches ? "dark" : "light";
}

/** The theme on screen: the saved choice, or the system's when there is none ("auto"). */
function shownTheme() {
  const theme = root.dataset.theme;
  return theme === "light" || theme === "dark" ? theme : systemTheme();
}

// Each click shows the other theme, so no click ever changes nothing (a system ->
// light -> dark cycle did exactly that on a light system). Arriving at the system's
// own theme means following the system again rather than pinning it.
function toggleTheme() {
  const next = shownTheme() === "dark" ? "light" : "dark";
  const follow = next === systemTheme();
  root.dataset.theme = follow ? "auto" : next;
  try {
    if (follow) localStorage.removeItem("theme");
    else localStorage.setItem("theme", next);
  } catch (e) {
    /* not persisted; still switched for this page */
  }
}

const toggles = [...document.querySelectorAll("[data-theme-toggle]")];
function labelToggles() {
  const label = shownTheme() === "dark" ? gettext("Включить светлую тему") : gettext("Включить тёмную тему");
  for (const button of toggles) {
    button.dataset.current = root.dataset.theme || "auto";
    button.setAttribute("aria-label", label);
    button.title = label;
  }
}
for (const button of toggles) {
  button.addEventListener("click", () => {
    toggleTheme();
    labelToggles();
  });
}
darkSystem.addEventListener("change", labelToggles);
labelToggles();

for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.submit());
}

// "Back" where there is somewhere on this site to go back to (else the link stays hidden;
// its href, the home page, is the way back without script).
let cameFromHere = false;
try {
  cameFromHere = Boolean(document.referrer) && new URL(document.referrer).origin === location.origin;
} catch (e) {
  /* an unparsable referrer: no back link */
}
for (const link of document.querySelectorAll("[data-history-back]")) {
  if (!cameFromHere || history.length < 2) continue;
  link.hidden = false;
  link.addEventListener("click", (event) => {
    event.preventDefault();
    history.back();
  });
}
