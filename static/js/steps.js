// A chapter in steps (lessons/steps.py): each step is a <details class="step"> the server renders
// open. Steps the learner has passed fold to their bar; each step ends with a button that passes
// it, folds it and opens the next; a link into a folded step (the steps list, the contents, a
// #section in the address) opens it first. The last step passed marks the chapter read.
import { gettext } from "./i18n.js";
import { csrfToken } from "./csrf.js";

const state = JSON.parse(document.getElementById("chapter-steps")?.textContent || "null");
const steps = [...document.querySelectorAll("details.step")];
const signedIn = document.querySelector("[data-live-panel][data-user]") !== null;

function stepOf(element) {
  return element?.closest?.("details.step") || null;
}

function openFor(hash) {
  if (!hash || hash.length < 2) return;
  let target = null;
  try {
    target = document.getElementById(decodeURIComponent(hash.slice(1)));
  } catch (error) {
    return;
  }
  const step = target?.matches?.("details.step") ? target : stepOf(target);
  if (step && !step.open) step.open = true;
}

function show(done) {
  const passed = new Set(done);
  for (const step of steps) {
    const number = Number(step.dataset.step);
    const isDone = passed.has(number);
    step.classList.toggle("is-done", isDone);
    const button = step.querySelector(":scope > .step-footer button");
    if (button) {
      const last = number === steps.length;
      button.textContent = isDone
        ? gettext("✓ Шаг пройден — отметить непройденным")
        : last
          ? gettext("Шаг пройден")
          : gettext("Шаг пройден — дальше");
      button.classList.toggle("subtle", isDone);
      button.setAttribute("aria-pressed", String(isDone));
    }
  }
  for (const item of document.querySelectorAll("[data-step-item]")) {
    item.classList.toggle("is-done", passed.has(Number(item.dataset.stepItem)));
  }
  const count = document.querySelector("[data-steps-count]");
  if (count) count.textContent = gettext("Пройдено шагов: {done} из {total}", { done: passed.size, total: steps.length });
}

async function pass(step, done) {
  const number = Number(step.dataset.step);
  const response = await fetch(`${state.url}${number}`, {
    method: "POST",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: new URLSearchParams({ done: done ? "1" : "0" }),
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const answer = await response.json();
  state.done = answer.done;
  show(state.done);
  if (answer.read) document.dispatchEvent(new CustomEvent("chapter:read"));
  if (!done) return;
  step.open = false;
  const next = steps[steps.indexOf(step) + 1];
  if (next) {
    next.open = true;
    next.querySelector(":scope > summary").scrollIntoView({ block: "start" });
  } else {
    step.querySelector(":scope > summary").scrollIntoView({ block: "nearest" });
  }
}

if (state && steps.length) {
  if (signedIn) {
    for (const step of steps) {
      const footer = document.createElement("div");
      footer.className = "step-footer";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.dataset.testid = `step-done-${step.dataset.step}`;
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await pass(step, !step.classList.contains("is-done"));
        } catch (error) {
          console.error("steps: saving failed", error);
        } finally {
          button.disabled = false;
        }
      });
      footer.append(button);
      step.append(footer);
    }
  }
  show(state.done);
  // Passed steps fold, unless the address leads into one.
  const passed = new Set(state.done);
  const folding = steps.filter((step) => passed.has(Number(step.dataset.step)));
  for (const step of folding) step.open = false;
  openFor(window.location.hash);
  // Folding moved what the address points at: take the learner back to it.
  if (folding.length && window.location.hash.length > 1) {
    document.getElementById(decodeURIComponent(window.location.hash.slice(1)))?.scrollIntoView({ block: "start" });
  }
  window.addEventListener("hashchange", () => openFor(window.location.hash));
  document.addEventListener("click", (event) => {
    const link = event.target.closest?.('a[href^="#"]');
    if (link) openFor(link.getAttribute("href"));
  });
}
