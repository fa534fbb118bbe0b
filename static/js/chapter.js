// Chapter page: reading progress bar, copy buttons, hints one at a time, mark-as-read.
const bar = document.querySelector(".reading-progress-bar");
const article = document.querySelector("article.chapter");

function updateProgress() {
  if (!bar || !article) return;
  const rect = article.getBoundingClientRect();
  const total = Math.max(1, rect.height - window.innerHeight);
  const done = Math.min(1, Math.max(0, -rect.top / total));
  bar.style.transform = `scaleX(${done})`;
}
window.addEventListener("scroll", updateProgress, { passive: true });
updateProgress();

const copyLabel = document.documentElement.lang === "en" ? "Copy" : "Копировать";
const copiedLabel = document.documentElement.lang === "en" ? "Copied" : "Скопировано";
for (const pre of document.querySelectorAll(".chapter-body pre")) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy-button";
  button.textContent = copyLabel;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(pre.innerText);
      button.textContent = copiedLabel;
    } catch (e) {
      button.textContent = "×";
    }
    setTimeout(() => (button.textContent = copyLabel), 1500);
  });
  pre.classList.add("has-copy");
  pre.before(button);
}

const hintLabel = document.documentElement.lang === "en" ? "Show a hint" : "Показать подсказку";
for (const exercise of document.querySelectorAll("section.exercise")) {
  const hints = [...exercise.querySelectorAll(".hint")];
  if (!hints.length) continue;
  hints.forEach((h) => (h.hidden = true));
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button subtle hint-button";
  const refresh = () => {
    const left = hints.filter((h) => h.hidden).length;
    button.textContent = `${hintLabel} (${left})`;
    button.disabled = left === 0;
  };
  button.addEventListener("click", () => {
    const next = hints.find((h) => h.hidden);
    if (next) next.hidden = false;
    refresh();
  });
  refresh();
  hints[0].before(button);
}
