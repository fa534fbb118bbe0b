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
