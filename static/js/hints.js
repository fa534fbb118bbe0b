// Exercise hints open one at a time: the next is offered only once the one before it is open.
// How many are open is remembered per exercise, so a reload keeps what the learner has seen.
import { gettext } from "./i18n.js";
import { el } from "./dom.js";

function remembered(key) {
  try {
    return Number(localStorage.getItem(key)) || 0;
  } catch {
    return 0; // storage refused (private mode): hints start closed
  }
}

function remember(key, opened) {
  try {
    localStorage.setItem(key, String(opened));
  } catch {
    // not remembered; the page still works
  }
}

for (const exercise of document.querySelectorAll("section.exercise[data-exercise]")) {
  const hints = [...exercise.querySelectorAll(".hint")];
  if (!hints.length) continue;
  const key = `hints-open:${location.pathname}#${exercise.dataset.exercise}`;
  const total = hints.length;
  let opened = Math.min(total, remembered(key));
  const button = el("button", "button subtle hint-button");
  button.type = "button";
  hints.forEach((hint, i) => {
    hint.id ||= `hint-${exercise.dataset.exercise}-${i + 1}`;
    hint.tabIndex = -1;
  });

  const show = () => {
    hints.forEach((hint, i) => (hint.hidden = i >= opened));
    if (opened >= total) {
      button.remove();
      return;
    }
    const n = { i: opened + 1, n: total };
    button.textContent = opened === 0 ? gettext("Показать подсказку (1 из {n})", n) : gettext("Следующая подсказка ({i} из {n})", n);
    button.setAttribute("aria-controls", hints[opened].id);
    hints[opened].before(button); // right after the last open hint: the next one is offered where reading stopped
  };

  button.addEventListener("click", () => {
    opened = Math.min(total, opened + 1);
    remember(key, opened);
    show();
    hints[opened - 1].focus({ preventScroll: true });
  });
  show();
}
