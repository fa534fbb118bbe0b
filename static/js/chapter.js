// Chapter page: reading progress bar, copy buttons, mark-as-read (from the header, or by reaching
// the end), and the section being read, for "continue where you left off" (hints: hints.js).
import { gettext } from "./i18n.js";
import { csrfToken } from "./csrf.js";

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

const copyLabel = gettext("Копировать");
const copiedLabel = gettext("Скопировано");
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

// --- marking the chapter read ---------------------------------------------------------------
// Two switches, one in the header (no need to scroll to the end to say "I know this") and one
// after the text. Reaching the end by scrolling also counts as reading it: the end seen on
// arrival (a short chapter, a link to the last section) does not, and neither does coming back
// to the end after the learner took the mark off on this page.

const readForms = [...document.querySelectorAll("form[data-mark-read]")];
let isRead = readForms[0]?.querySelector("input[name=read]").value === "0";
let unmarkedHere = false;
let readNote = null;

function showRead(read) {
  isRead = read;
  for (const form of readForms) {
    form.querySelector("input[name=read]").value = read ? "0" : "1";
    const button = form.querySelector("button");
    button.textContent = read ? button.dataset.labelRead : button.dataset.labelUnread;
    button.setAttribute("aria-pressed", String(read));
    if (form.classList.contains("mark-read-bottom")) button.classList.toggle("subtle", read);
  }
}

async function markRead(read, { automatic = false } = {}) {
  const form = readForms[0];
  if (!form) return;
  const before = isRead;
  showRead(read); // at once: the answer only confirms it
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: new URLSearchParams({ read: read ? "1" : "0" }),
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  } catch (error) {
    console.error("chapter: marking read failed", error);
    showRead(before);
    return;
  }
  if (automatic) {
    const bottom = document.querySelector(".mark-read-bottom");
    if (bottom && !readNote) {
      readNote = document.createElement("p");
      readNote.className = "mark-read-note";
      readNote.setAttribute("role", "status");
      bottom.after(readNote);
    }
    if (readNote) readNote.textContent = gettext("Вы дочитали главу — она отмечена прочитанной.");
  } else if (readNote) {
    readNote.textContent = "";
  }
}

// The last step passed (steps.js) marks the chapter read on the server.
document.addEventListener("chapter:read", () => showRead(true));

for (const form of readForms) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const read = !isRead;
    if (!read) unmarkedHere = true;
    markRead(read);
  });
}

// The mark comes a moment after the end is reached, so a learner who scrolled down to press
// the button presses it before its label changes under the pointer. (Pictures loading near the
// end may push the end out of view again; it was reached all the same.)
const END_DELAY_MS = 1200;
const chapterEnd = document.querySelector(".chapter-footer");
let scrolledByLearner = false;
let endInView = false;
let endTimer = 0;
function readOnReachingEnd() {
  const due = () => !isRead && !unmarkedHere && readForms.length > 0;
  if (endTimer || !endInView || !scrolledByLearner || !due()) return;
  endTimer = setTimeout(() => {
    if (due()) markRead(true, { automatic: true });
  }, END_DELAY_MS);
}
// Only the learner's own scrolling counts (wheel, touch, scrolling keys, the scrollbar): the
// browser's jump to a #section on arrival, or a click in the table of contents, reads nothing.
const SCROLL_KEYS = new Set(["PageDown", "End", "ArrowDown", " ", "Spacebar"]);
function learnerScrolled() {
  scrolledByLearner = true;
  requestAnimationFrame(readOnReachingEnd);
}
window.addEventListener("wheel", learnerScrolled, { passive: true });
window.addEventListener("touchmove", learnerScrolled, { passive: true });
window.addEventListener("mousedown", (event) => {
  if (event.target === document.documentElement) learnerScrolled(); // the page's scrollbar
});
window.addEventListener("keydown", (event) => {
  const typing = event.target.closest?.("input, textarea, select, [contenteditable]");
  if (!SCROLL_KEYS.has(event.key) || typing) return;
  // End takes the learner to the bottom, whatever the page does next.
  if (event.key === "End") endInView = true;
  learnerScrolled();
});
// The bottom reached by the learner's own scrolling counts even if the end never showed in one of
// the observer's looks: code editors measure their real height only once scrolled into view, so
// the page can grow under a fast scroll and push the end back out before the observer looks.
window.addEventListener(
  "scroll",
  () => {
    const bottom = document.documentElement.scrollHeight - window.innerHeight - 4;
    if (scrolledByLearner && !endInView && window.scrollY >= bottom) {
      endInView = true;
      readOnReachingEnd();
    }
  },
  { passive: true },
);
if (chapterEnd && readForms.length && "IntersectionObserver" in window) {
  new IntersectionObserver((entries) => {
    endInView = entries.some((e) => e.isIntersecting);
    readOnReachingEnd();
  }).observe(chapterEnd);
}

// --- where the learner is -------------------------------------------------------------------
// The section being read is the last TOC heading above the upper third of the window; the
// server keeps it (per course) so the home and course pages can lead back to it.

const positionUrl = article?.dataset.positionUrl;
const tocLinks = new Map(
  [...document.querySelectorAll("nav.toc a[href^='#']")].map((a) => [decodeURIComponent(a.hash.slice(1)), a]),
);
const sections = [...document.querySelectorAll(".chapter-body h2[id], .chapter-body h3[id]")].filter((h) => tocLinks.has(h.id));
let currentAnchor = null;
let positionTimer = 0;

function anchorInView() {
  const line = window.innerHeight / 3;
  let found = "";
  for (const heading of sections) {
    if (heading.getBoundingClientRect().top > line) break;
    found = heading.id;
  }
  return found;
}

function sendPosition(anchor) {
  if (!positionUrl) return;
  fetch(positionUrl, {
    method: "POST",
    headers: { "X-CSRFToken": csrfToken() },
    body: new URLSearchParams({ anchor }),
    credentials: "same-origin",
    keepalive: true, // the last report may be sent as the page goes away
  }).catch(() => {
    /* offline: the next report carries the place */
  });
}

function trackPosition() {
  const anchor = anchorInView();
  if (anchor === currentAnchor) return;
  const first = currentAnchor === null;
  currentAnchor = anchor;
  for (const [id, link] of tocLinks) {
    if (id === anchor) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
  clearTimeout(positionTimer);
  // Scrolling through many sections sends only where the learner stops.
  positionTimer = setTimeout(
    () => {
      positionTimer = 0;
      sendPosition(anchor);
    },
    first ? 0 : 700,
  );
}

let scrollFrame = 0;
window.addEventListener(
  "scroll",
  () => {
    if (scrollFrame) return;
    scrollFrame = requestAnimationFrame(() => {
      scrollFrame = 0;
      trackPosition();
      readOnReachingEnd();
    });
  },
  { passive: true },
);
window.addEventListener("pagehide", () => {
  if (positionTimer && currentAnchor !== null) {
    clearTimeout(positionTimer);
    sendPosition(currentAnchor);
  }
});
// The first report waits for the page to settle, so a jump to a section is not first reported as the top.
if (document.readyState === "complete") trackPosition();
else window.addEventListener("load", () => requestAnimationFrame(trackPosition), { once: true });
