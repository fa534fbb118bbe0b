// The chapter editor: front matter fields + the Markdown body in a code editor (CodeMirror,
// Markdown mode, line numbers), a live preview from the server's own renderer that follows the
// cursor, problems that jump to their line, save with conflict handling (Ctrl+S), draft cells
// run in the instructor's sandbox with their messages in the learners' live panel, and
// exercises proven on a fresh broker.
import { gettext } from "./i18n.js";
import { live } from "./live.js";
import { button, el } from "./dom.js";
import { csrfToken } from "./csrf.js";

const root = document.querySelector("[data-editor]");

async function postJSON(url, data) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(data),
    credentials: "same-origin",
  });
  let body = {};
  try {
    body = await response.json();
  } catch (e) {
    /* not JSON: keep the status */
  }
  return { status: response.status, body };
}

/** A unified diff as lines coloured by what they are (the history page does the same on the server). */
function renderDiff(pre, text) {
  const kind = (line) => {
    if (line.startsWith("+++") || line.startsWith("---")) return "file";
    if (line.startsWith("@@")) return "hunk";
    if (line.startsWith("+")) return "add";
    if (line.startsWith("-")) return "del";
    return "same";
  };
  pre.replaceChildren(
    ...text
      .split("\n")
      .filter((line, i, all) => line || i < all.length - 1)
      .map((line) => el("span", `diff-line diff-${kind(line)}`, line)),
  );
}

// --- the body's editor: CodeMirror where it loads, else the textarea ---------------------------
// Both answer the same small interface: value, onChange, onCursor(line), goTo(line), focus.

function lineOfOffset(text, offset) {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line += 1;
  return line;
}

function textareaEditor(textarea) {
  const cursorHandlers = [];
  const report = () => cursorHandlers.forEach((fn) => fn(lineOfOffset(textarea.value, textarea.selectionStart)));
  for (const type of ["keyup", "click", "select"]) textarea.addEventListener(type, report);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && !event.shiftKey) {
      event.preventDefault();
      textarea.setRangeText("    ", textarea.selectionStart, textarea.selectionEnd, "end");
      textarea.dispatchEvent(new Event("input"));
    }
  });
  return {
    get value() {
      return textarea.value;
    },
    set value(text) {
      textarea.value = text;
    },
    onChange: (fn) => textarea.addEventListener("input", fn),
    onCursor: (fn) => cursorHandlers.push(fn),
    goTo(line) {
      const lines = textarea.value.split("\n");
      const offset = lines.slice(0, Math.max(0, line - 1)).reduce((sum, l) => sum + l.length + 1, 0);
      textarea.focus();
      textarea.setSelectionRange(offset, offset);
      report();
    },
    focus: () => textarea.focus(),
  };
}

function codeMirrorEditor({ CM, editorBasics }, host, textarea) {
  const changeHandlers = [];
  const cursorHandlers = [];
  let silent = false; // replacing the whole text (a conflict taken over) is not an edit
  const view = new CM.EditorView({
    parent: host,
    state: CM.EditorState.create({
      doc: textarea.value,
      extensions: [
        editorBasics(),
        CM.EditorView.lineWrapping,
        CM.chapterMarkdown(),
        CM.EditorView.contentAttributes.of({
          "aria-labelledby": "body-label",
          "aria-describedby": "format-help",
          spellcheck: "true",
          "data-testid": "markdown-input",
        }),
        CM.EditorView.updateListener.of((update) => {
          if (update.docChanged && !silent) changeHandlers.forEach((fn) => fn());
          if (update.selectionSet || update.docChanged) {
            const line = update.state.doc.lineAt(update.state.selection.main.head).number;
            cursorHandlers.forEach((fn) => fn(line));
          }
        }),
      ],
    }),
  });
  textarea.hidden = true;
  host.hidden = false;
  return {
    view,
    get value() {
      return view.state.doc.toString();
    },
    set value(text) {
      silent = true;
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
      silent = false;
    },
    onChange: (fn) => changeHandlers.push(fn),
    onCursor: (fn) => cursorHandlers.push(fn),
    goTo(line) {
      const target = view.state.doc.line(Math.min(Math.max(1, line), view.state.doc.lines));
      view.dispatch({
        selection: { anchor: target.from },
        effects: CM.EditorView.scrollIntoView(target.from, { y: "center" }),
      });
      view.focus();
    },
    focus: () => view.focus(),
  };
}

async function bodyEditor(textarea, host) {
  // CodeMirror styles itself with a constructable stylesheet (the CSP forbids <style>);
  // where a browser cannot adopt one on the document, the textarea does the job.
  if ("adoptedStyleSheets" in Document.prototype) {
    try {
      const [CM, { editorBasics }] = await Promise.all([import("../vendor/codemirror.js"), import("./editor-setup.js")]);
      return codeMirrorEditor({ CM, editorBasics }, host, textarea);
    } catch (error) {
      console.error("author: the code editor did not load", error);
    }
  }
  return textareaEditor(textarea);
}

// --- the preview follows the cursor ------------------------------------------------------------
// The server marks each block of the preview with the line it starts on (data-line); the
// block under the cursor is the last one starting at or above the cursor's line.

function blockAtLine(preview, line) {
  let found = null;
  let foundLine = 0;
  for (const block of preview.querySelectorAll("[data-line]")) {
    const start = Number(block.dataset.line);
    // Equal starts (a list and its first item, a table and its head): the innermost wins.
    if (start <= line && start >= foundLine) {
      found = block;
      foundLine = start;
    }
  }
  // A block inside a closed <details> (a solution, a setup cell) shows as its summary.
  return found?.closest("details:not([open])") || found;
}

// Pictures load as the preview scrolls and push the blocks below them down; for a moment
// after following the cursor, a change of the preview's height follows it again (the
// instructor scrolling the preview by hand ends that moment).
const HOLD_MS = 2500;
let holdUntil = 0;

function followCursor(pane, preview, line, { smooth = true, hold = true } = {}) {
  if (hold) holdUntil = performance.now() + HOLD_MS;
  const block = blockAtLine(preview, line);
  for (const old of preview.querySelectorAll(".is-cursor-block")) old.classList.remove("is-cursor-block");
  if (!block) return;
  block.classList.add("is-cursor-block");
  const paneBox = pane.getBoundingClientRect();
  const box = block.getBoundingClientRect();
  const top = box.top - paneBox.top;
  // Already comfortably in view: leave the preview still, so it does not jitter while typing.
  if (top >= paneBox.height * 0.1 && top + Math.min(box.height, paneBox.height * 0.5) <= paneBox.height * 0.8) return;
  const reduce = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  pane.scrollTo({ top: pane.scrollTop + top - paneBox.height * 0.25, behavior: smooth && !reduce ? "smooth" : "auto" });
}

if (root) {
  const state = JSON.parse(document.getElementById("editor-state").textContent);
  let revision = state.revision;
  let saveUrl = root.dataset.saveUrl;
  const textarea = root.querySelector("[data-body]");
  const pane = root.querySelector(".preview-pane");
  const preview = root.querySelector("[data-preview]");
  const previewTitle = root.querySelector("[data-preview-title]");
  const problems = root.querySelector("[data-problems]");
  const problemsBox = root.querySelector("[data-problems-box]");
  const status = root.querySelector("[data-save-status]");
  const conflict = root.querySelector("[data-conflict]");
  const metaInputs = [...root.querySelectorAll("[data-meta]")];
  const assetBase = root.dataset.assetBase.replace(/x$/, "");
  let dirty = false;
  let lastConflict = null;
  let cursorLine = 1;

  // Fields that hold a list, one item per line (objectives, the headings steps begin with).
  const LIST_FIELDS = new Set(["objectives", "steps"]);
  function fillMeta(values) {
    for (const input of metaInputs) {
      const v = values.meta[input.dataset.meta];
      input.value = LIST_FIELDS.has(input.dataset.meta) ? (v || []).join("\n") : v ?? "";
    }
  }
  // The page comes with the fields and the text filled in (editor.html); the code editor
  // starts from the textarea as it is when it loads, so nothing typed meanwhile is lost.
  const editor = await bodyEditor(textarea, root.querySelector("[data-body-editor]"));

  function fill(values) {
    fillMeta(values);
    editor.value = values.body;
  }

  function collect() {
    const meta = {};
    for (const input of metaInputs) {
      const key = input.dataset.meta;
      meta[key] = LIST_FIELDS.has(key) ? input.value.split("\n").map((s) => s.trim()).filter(Boolean) : input.value;
    }
    return { meta, body: editor.value, revision, asset_base: assetBase };
  }

  // A problem in the body is a button to its line; one in the front matter names the field's line.
  function showProblems(list) {
    problemsBox.hidden = list.length === 0;
    problems.replaceChildren(
      ...list.map((p) => {
        const li = el("li");
        if (p.body_line) {
          const n = String(p.body_line); // as the gutter shows it: 1709, not "1 709"
          const jump = button("problem-link", null, gettext("Перейти к строке {n}", { n }));
          jump.dataset.line = p.body_line;
          jump.append(el("span", "problem-line", gettext("строка {n}", { n })), ` ${p.message}`);
          jump.addEventListener("click", () => editor.goTo(p.body_line));
          li.append(jump);
        } else {
          li.textContent = p.line ? `${gettext("свойства главы")}: ${p.message}` : p.message;
        }
        return li;
      }),
    );
  }

  function setStatus(text, kind = "") {
    status.textContent = text;
    status.className = `save-status ${kind}`;
  }

  // One preview request at a time: a long chapter takes the server a while to render, and
  // edits made meanwhile are sent together once the answer is in.
  let previewTimer = null;
  let previewBusy = false;
  let previewAgain = false;
  async function refreshPreview() {
    if (previewBusy) {
      previewAgain = true;
      return;
    }
    previewBusy = true;
    previewAgain = false;
    const data = collect();
    let answer;
    try {
      ({ body: answer } = await postJSON(root.dataset.previewUrl, data));
    } finally {
      previewBusy = false;
    }
    if (previewAgain) {
      refreshPreview(); // what is on screen now is already older than the text
      return;
    }
    previewTitle.textContent = data.meta.title;
    // The server's renderer sanitised this HTML (nh3): it is the same markup learners get.
    preview.innerHTML = answer.html || "";
    showProblems(answer.problems || []);
    decoratePreview();
    followCursor(pane, preview, cursorLine, { smooth: false });
  }

  function changed() {
    dirty = true;
    setStatus(gettext("не сохранено"), "dirty");
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, 250);
  }

  if ("ResizeObserver" in window) {
    new ResizeObserver(() => {
      if (performance.now() < holdUntil) followCursor(pane, preview, cursorLine, { smooth: false, hold: false });
    }).observe(preview);
  }
  for (const type of ["wheel", "touchstart", "mousedown", "keydown"]) {
    pane.addEventListener(type, () => (holdUntil = 0), { passive: true });
  }

  let cursorFrame = 0;
  editor.onCursor((line) => {
    cursorLine = line;
    if (cursorFrame) return;
    cursorFrame = requestAnimationFrame(() => {
      cursorFrame = 0;
      followCursor(pane, preview, cursorLine);
    });
  });

  async function save(overwrite = false) {
    const data = collect();
    if (overwrite && lastConflict) data.revision = lastConflict.revision;
    setStatus(gettext("сохраняю…"));
    const { status: code, body: answer } = await postJSON(saveUrl, data);
    if (code === 200 || code === 201) {
      revision = answer.revision;
      dirty = false;
      conflict.hidden = true;
      lastConflict = null;
      showProblems([]);
      setStatus(`${gettext("сохранено")} r${revision}`);
      if (answer.edit_url && !location.pathname.endsWith(answer.edit_url)) location.assign(answer.edit_url);
    } else if (code === 409) {
      lastConflict = answer;
      conflict.hidden = false;
      renderDiff(root.querySelector("[data-conflict-diff]"), answer.diff);
      setStatus(gettext("конфликт"), "error");
    } else {
      showProblems(answer.problems || [{ message: `HTTP ${code}` }]);
      setStatus(gettext("не сохранено: ошибки"), "error");
    }
  }

  root.querySelector("[data-save]").addEventListener("click", () => save());
  root.querySelector("[data-keep-mine]").addEventListener("click", () => save(true));
  root.querySelector("[data-take-theirs]").addEventListener("click", () => {
    if (!lastConflict) return;
    revision = lastConflict.revision;
    fill(lastConflict.current);
    conflict.hidden = true;
    lastConflict = null;
    dirty = false;
    setStatus(`r${revision}`);
    refreshPreview();
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      save();
    }
  });
  window.addEventListener("beforeunload", (event) => {
    if (dirty) event.preventDefault();
  });
  editor.onChange(changed);
  for (const input of metaInputs) input.addEventListener("input", changed);

  // -- draft cells run in the instructor's own sandbox, over the page's live WebSocket ----------
  // The same socket feeds the live panel, so the draft's messages show as a learner sees them.
  const runs = new Map();
  live.on("cell.output", (frame) => {
    const out = runs.get(frame.run);
    if (!out) return;
    out.append(el("span", frame.stream === "stderr" ? "stderr" : "", frame.text));
  });
  const finish = (frame) => {
    const out = runs.get(frame.run);
    if (!out) return;
    const text =
      frame.type === "cell.error"
        ? frame.message
        : `→ ${gettext("код выхода")} ${frame.status}${frame.reason ? ` (${frame.reason})` : ""}`;
    out.append(el("div", "draft-exit", text));
    runs.delete(frame.run);
  };
  live.on("cell.exit", finish);
  live.on("cell.error", finish);
  live.on("error", (frame) => frame.run && finish({ ...frame, type: "cell.error" })); // refused (limits)
  live.on("connection.lost", () => {
    for (const run of [...runs.keys()]) finish({ type: "cell.error", run, message: gettext("Связь с сервером прервалась; результат запуска неизвестен. Запустите ячейку ещё раз.") });
  });

  function runDraft(figure, out) {
    const id = `draft-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    out.hidden = false;
    out.replaceChildren();
    runs.set(id, out);
    const sent = live.send({
      type: "cell.run",
      run: id,
      draft: true,
      course: root.dataset.course,
      broker: figure.dataset.broker,
      timeout: Number(figure.dataset.timeout) || 30,
      code: figure.querySelector("pre").textContent,
    });
    if (!sent) finish({ type: "cell.error", run: id, message: gettext("Нет связи с сервером. Дождитесь, пока индикатор станет зелёным, и повторите.") });
  }

  function decoratePreview() {
    for (const figure of preview.querySelectorAll("figure.cell")) {
      const bar = el("div", "draft-run");
      const run = button("button small", `▶ ${gettext("Запустить в моей песочнице")} (${figure.dataset.broker})`);
      const out = el("pre", "draft-output");
      out.dataset.cell = figure.dataset.cell;
      out.hidden = true;
      run.addEventListener("click", () => runDraft(figure, out));
      bar.append(run);
      figure.after(bar, out);
    }
    if (!root.dataset.verifyBase) return;
    for (const section of preview.querySelectorAll("section.exercise")) {
      const check = button("button subtle small", gettext("Проверить упражнение на чистом брокере"));
      const report = el("div", "verify-report");
      check.addEventListener("click", () => verify(section.dataset.exercise, report, check));
      section.append(check, report);
    }
  }

  async function verify(key, report, trigger) {
    if (dirty) {
      report.textContent = gettext("Сначала сохраните главу: проверяется сохранённая версия.");
      return;
    }
    trigger.disabled = true;
    report.textContent = gettext("Запускаю чистый брокер…");
    const { status, body: job } = await postJSON(`${root.dataset.verifyBase}${key}/verify`, {});
    if (status !== 202) {
      // Refused by the instructor's own limits (sandboxes held, runs at once): the reason is shown.
      trigger.disabled = false;
      report.textContent = job.error || gettext("Проверку не удалось запустить.");
      return;
    }
    for (let i = 0; i < 300; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const answer = await (await fetch(job.poll, { credentials: "same-origin" })).json();
      if (answer.state === "pending") continue;
      trigger.disabled = false;
      report.replaceChildren();
      if (answer.state !== "done") {
        report.textContent = answer.error || "error";
        return;
      }
      const r = answer.report;
      const line = (ok, text) => el("p", ok ? "pass" : "fail", `${ok ? "✓" : "✗"} ${text}`);
      if (r.error) {
        report.append(line(false, r.error));
        return;
      }
      report.append(
        line(r.empty_fails, gettext("проверка не проходит на пустом брокере")),
        line(r.solution_runs, gettext("эталонное решение выполняется")),
        line(r.solved_passes, gettext("после решения проверка проходит")),
      );
      return;
    }
    trigger.disabled = false;
  }

  refreshPreview();
}
