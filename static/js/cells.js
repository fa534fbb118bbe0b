// Code cells: each figure.cell becomes a CodeMirror editor with Run / Interrupt / Reset,
// streaming output and an exit badge; drafts save themselves; exercises get a Check button.
// Output is drawn once per animation frame into a bounded DOM (the head, "N lines not shown",
// the last lines), and each cell's last output comes back after a reload (keep.js).
// Anonymous visitors keep the server-highlighted code and get a login link instead.
import { live, stageLabel } from "./live.js";
import { LANG, gettext, ngettext, pgettext, formatDuration } from "./i18n.js";
import { el, icon } from "./dom.js";
import { hintNode } from "./cell-hints.js";
import { keep, recall, forget } from "./keep.js";
import { csrfToken } from "./csrf.js";

const article = document.querySelector("article.chapter");
const panel = document.querySelector("[data-live-panel]");
const anonymous = !live.enabled;
const RUNNABLE = new Set(["run", "setup", "starter", "solution"]);
const SAVE_DELAY_MS = 1000;
// The agent sends a long output as its head, then a rolling tail (sandboxes/agent/output.py);
// the page keeps a tail as long as the agent's, so the last lines are always the real ones.
const TAIL_LINES = 200;
const TAIL_CHARS = 32 * 1024;
const HEAD_MAX_CHARS = 96 * 1024; // the agent's head is at most 64 KiB; anything past this joins the tail
// Of an output kept for the next visit: its start and its end, the middle counted.
const KEEP_HEAD_CHARS = 8 * 1024;
const KEEP_TAIL_CHARS = 8 * 1024;
const CHECK_TIMEOUT_MS = 180_000;

const cellData = readJson("chapter-cells", []);
const exerciseData = readJson("chapter-exercises", {});
const byKey = new Map(cellData.map((c) => [c.key, c]));
const cells = []; // Cell objects in document order
const runs = new Map(); // run id -> Cell
const checks = new Map(); // exercise key -> Check
let executionCount = 0;

function readJson(id, fallback) {
  const node = document.getElementById(id);
  if (!node) return fallback;
  try {
    return JSON.parse(node.textContent);
  } catch (error) {
    console.error(error);
    return fallback;
  }
}

const SAVE_LABELS = { saving: gettext("сохраняю…"), saved: gettext("черновик сохранён"), failed: gettext("не сохранено") };
const ROLE_LABELS = { setup: pgettext("cell role", "подготовка"), starter: gettext("заготовка"), solution: gettext("решение") };
const EXIT_ICONS = { ok: "check", fail: "cross", error: "cross", timeout: "clock", output: "cut", interrupted: "stop" };

/** A button with an icon and, when given, a visible label. */
function button(className, label, iconName, title) {
  const node = el("button", className);
  node.type = "button";
  if (iconName) node.append(icon(iconName));
  if (label) node.append(el("span", "label", label));
  if (title) node.title = title;
  return node;
}

let runCounter = 0;
function newRunId() {
  runCounter += 1;
  const random = globalThis.crypto?.randomUUID ? crypto.randomUUID() : Math.random().toString(36).slice(2) + Date.now().toString(36);
  return `r${runCounter}-${random}`;
}

const TRACE_FILE = /^(\s*File ")([^"]+)(", line )(\d+)(.*)$/;
const TRACE_EXCEPTION = /^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)\b/;

// --- editors: CodeMirror, or a plain textarea where CodeMirror cannot style itself -------

/** A CodeMirror 6 editor in ``host``; the returned object is all a Cell uses. */
function codeMirrorEditor({ CM, editorBasics }, host, { doc, label, onChange, runAndAdvance, runHere }) {
  const runKeys = CM.Prec.highest(
    CM.keymap.of([
      { key: "Shift-Enter", run: () => (runAndAdvance(), true) },
      { key: "Mod-Enter", run: () => (runHere(), true) },
      { key: "Ctrl-Enter", run: () => (runHere(), true) },
    ]),
  );
  const view = new CM.EditorView({
    parent: host,
    state: CM.EditorState.create({
      doc,
      extensions: [
        runKeys,
        editorBasics({ keys: CM.completionKeymap }),
        CM.indentUnit.of("    "),
        CM.EditorState.tabSize.of(4),
        CM.autocompletion({ activateOnTyping: false }),
        CM.python(),
        CM.EditorView.contentAttributes.of({ "aria-label": label }),
        CM.EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange();
        }),
      ],
    }),
  });
  return {
    get: () => view.state.doc.toString(),
    // A transaction, not a new state: Ctrl+Z brings the previous code back.
    set: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    focus: () => view.focus(),
    goToLine(number) {
      const d = view.state.doc;
      const line = d.line(Math.min(Math.max(1, number), d.lines));
      view.dispatch({ selection: { anchor: line.from, head: line.to }, scrollIntoView: true });
      view.focus();
    },
  };
}

/** The fallback: a monospace textarea with the same keys (Tab indents, Esc then Tab leaves). */
function textareaEditor(host, { doc, label, onChange, runAndAdvance, runHere }) {
  const area = el("textarea", "cell-textarea");
  area.value = doc;
  area.spellcheck = false;
  area.setAttribute("aria-label", label);
  area.setAttribute("autocapitalize", "off");
  const fit = () => {
    area.rows = Math.min(30, Math.max(3, area.value.split("\n").length));
  };
  fit();
  let escaped = false;
  area.addEventListener("input", () => {
    fit();
    onChange();
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.shiftKey) {
      event.preventDefault();
      runAndAdvance();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      runHere();
    } else if (event.key === "Tab" && !escaped && !event.shiftKey) {
      event.preventDefault();
      area.setRangeText("    ", area.selectionStart, area.selectionEnd, "end");
      onChange();
    }
    escaped = event.key === "Escape";
  });
  host.append(area);
  return {
    get: () => area.value,
    set(text) {
      area.select();
      // execCommand keeps the browser's undo history; setRangeText is the fallback.
      if (!document.execCommand("insertText", false, text)) area.setRangeText(text, 0, area.value.length, "end");
      fit();
      onChange();
    },
    focus: () => area.focus(),
    goToLine(number) {
      const lines = area.value.split("\n");
      const start = lines.slice(0, number - 1).reduce((n, l) => n + l.length + 1, 0);
      area.focus();
      area.setSelectionRange(start, start + (lines[number - 1] || "").length);
    },
  };
}

// --- output: drawn once per animation frame, however many chunks arrive in between -----------

const unpainted = new Set(); // cells with output waiting to be drawn
let frameAsked = false;

function paintSoon(cell) {
  unpainted.add(cell);
  if (frameAsked) return;
  frameAsked = true;
  requestAnimationFrame(() => {
    frameAsked = false;
    for (const c of [...unpainted]) c.paint();
  });
}

function newlines(text) {
  let n = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) n += 1;
  return n;
}

/** The first ``max`` characters of [stream, text] pieces, cut after a line where one ends; and the rest. */
function splitFirst(pieces, max) {
  const kept = [];
  let used = 0;
  for (let i = 0; i < pieces.length; i += 1) {
    const [stream, text] = pieces[i];
    if (used + text.length <= max) {
      kept.push(pieces[i]);
      used += text.length;
      continue;
    }
    const room = max - used;
    let cut = text.lastIndexOf("\n", room - 1) + 1;
    if (cut === 0 && used === 0) cut = room; // one endless line: cut where it must be
    if (cut > 0) kept.push([stream, text.slice(0, cut)]);
    return [kept, [[stream, text.slice(cut)], ...pieces.slice(i + 1)]];
  }
  return [kept, []];
}

/** The last ``max`` characters of [stream, text] pieces, starting with a whole line where one starts; and what came before. */
function splitLast(pieces, max) {
  const kept = [];
  let used = 0;
  for (let i = pieces.length - 1; i >= 0; i -= 1) {
    const [stream, text] = pieces[i];
    if (used + text.length <= max) {
      kept.unshift(pieces[i]);
      used += text.length;
      continue;
    }
    const from = text.length - (max - used);
    const newline = text.indexOf("\n", Math.max(0, from - 1));
    let start = newline === -1 ? text.length : newline + 1;
    if (newline === -1 && used === 0) start = from; // one endless line
    if (start < text.length) kept.unshift([stream, text.slice(start)]);
    return [[...pieces.slice(0, i), [stream, text.slice(0, start)]], kept];
  }
  return [[], kept];
}

/** What of an output is kept for the next visit: at most KEEP_HEAD_CHARS of its start and KEEP_TAIL_CHARS of its end. */
function boundForKeeping(head, tail, hidden) {
  if (!hidden[0] && !hidden[1]) {
    head = head.concat(tail); // no gap yet: one sequence, cut in the middle if it is long
    tail = [];
  }
  const [first, rest] = splitFirst(head, KEEP_HEAD_CHARS);
  let middle;
  let last;
  if (tail.length) {
    const [dropped, kept] = splitLast(tail, KEEP_TAIL_CHARS);
    middle = rest.concat(dropped);
    last = kept;
  } else {
    [middle, last] = splitLast(rest, KEEP_TAIL_CHARS);
  }
  const lines = middle.reduce((n, [, text]) => n + newlines(text), 0);
  const chars = middle.reduce((n, [, text]) => n + text.length, 0);
  return { head: first, tail: last, hidden: [hidden[0] + lines, hidden[1] + chars] };
}

class Cell {
  constructor(figure, data) {
    this.figure = figure;
    this.data = data;
    this.key = data.key;
    this.role = data.role;
    this.broker = data.broker || figure.dataset.broker || article?.dataset.broker || "";
    this.timeout = Number(data.timeout || figure.dataset.timeout || 30);
    this.runId = null;
    this.editor = null;
    this.savedCode = data.code ?? data.original ?? "";
    this.saveTimer = 0;
    this.saving = null;
    figure.classList.add("is-live");
  }

  // --- building -------------------------------------------------------------------------

  buildToolbar() {
    const bar = el("div", "cell-toolbar");
    this.prompt = el("span", "cell-prompt", "[ ]");
    this.prompt.setAttribute("aria-hidden", "true");
    this.runButton = button("cell-btn cell-run", pgettext("cell", "Запустить"), "run", gettext("Запустить ячейку (Shift+Enter — и перейти к следующей, Ctrl+Enter — остаться)"));
    this.stopButton = button("cell-btn cell-interrupt", gettext("Прервать"), "stop");
    this.stopButton.hidden = true;
    this.status = el("span", "cell-status");
    this.status.setAttribute("aria-live", "polite");
    this.saveState = el("button", "cell-save link");
    this.saveState.type = "button";
    this.saveState.hidden = true;
    this.resetButton = button("cell-icon", null, "reset", gettext("Вернуть исходный код"));
    this.resetButton.setAttribute("aria-label", gettext("Вернуть исходный код"));
    this.copyButton = button("cell-icon", null, "copy", gettext("Копировать код"));
    this.copyButton.setAttribute("aria-label", gettext("Копировать код"));
    const meta = el("span", "cell-meta");
    const role = ROLE_LABELS[this.role];
    if (role) meta.append(el("span", `cell-role role-${this.role}`, role));
    if (this.broker) meta.append(el("span", `cell-broker broker-${this.broker}`, this.broker));
    const limit = el("span", "cell-limit");
    limit.append(icon("clock"), gettext("{n} с", { n: this.timeout }));
    limit.title = gettext("лимит {s} с", { s: this.timeout });
    meta.append(limit);
    bar.append(this.prompt, this.runButton, this.stopButton, this.status, el("span", "cell-spacer"), this.saveState, this.resetButton, this.copyButton, meta);

    this.runButton.addEventListener("click", () => this.run());
    this.stopButton.addEventListener("click", () => this.interrupt());
    this.resetButton.addEventListener("click", () => this.reset());
    this.copyButton.addEventListener("click", () => this.copy());
    this.saveState.addEventListener("click", () => this.save());
    return bar;
  }

  buildOutput() {
    this.output = el("div", "cell-output");
    this.output.hidden = true;
    this.output.setAttribute("role", "log");
    this.output.setAttribute("aria-label", gettext("Вывод ячейки"));
    // One scroller for the head, the count of lines not shown and the tail; layout stays inside it.
    this.scroller = el("div", "cell-scroll");
    this.stream = el("pre", "cell-stream");
    this.gap = el("div", "cell-gap");
    this.gap.hidden = true;
    this.gap.title = gettext("Вывод слишком длинный: показаны его первые и последние строки.");
    this.tailBox = el("pre", "cell-stream cell-tail");
    this.scroller.append(this.stream, this.gap, this.tailBox);
    this.exit = el("div", "cell-exit");
    this.output.append(this.scroller, this.exit);
    this.resetOutputState();
    return this.output;
  }

  resetOutputState() {
    this.queue = []; // [stream, text, part] waiting for the next frame
    this.headPieces = []; // [stream, text] drawn in the head, to keep them
    this.headChars = 0;
    this.inTail = false;
    this.tailLines = []; // {stream, text}: the last lines, each with its newline (the last may lack it)
    this.tailChars = 0;
    this.hiddenLines = 0;
    this.hiddenChars = 0;
  }

  mount(makeEditor) {
    const host = el("div", "cell-editor");
    this.editor = makeEditor(host, {
      doc: this.savedCode,
      label: gettext("Код ячейки {key}", { key: this.key }),
      onChange: () => this.changed(),
      runAndAdvance: () => {
        this.run();
        this.focusNext();
      },
      runHere: () => this.run(),
    });
    const toolbar = this.buildToolbar();
    // The editor replaces the <pre> (and chapter.js's copy button for it: the toolbar has one).
    this.figure.replaceChildren(toolbar, host, this.buildOutput());
    this.refreshEdited();
    this.restoreOutput();
  }

  mountReadOnly(loginUrl) {
    this.figure.classList.add("is-readonly");
    const bar = el("div", "cell-toolbar");
    const link = el("a", "cell-login");
    link.href = loginUrl;
    link.append(icon("lock"), el("span", "label", gettext("Войдите, чтобы запускать код")));
    const meta = el("span", "cell-meta");
    const role = ROLE_LABELS[this.role];
    if (role) meta.append(el("span", `cell-role role-${this.role}`, role));
    if (this.broker) meta.append(el("span", `cell-broker broker-${this.broker}`, this.broker));
    bar.append(link, el("span", "cell-spacer"), meta);
    this.figure.prepend(bar);
  }

  // --- editing and drafts ---------------------------------------------------------------

  code() {
    return this.editor ? this.editor.get() : this.savedCode;
  }

  changed() {
    this.refreshEdited();
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.save(), SAVE_DELAY_MS);
  }

  refreshEdited() {
    const edited = this.code() !== (this.data.original ?? "");
    this.figure.classList.toggle("is-edited", edited);
    this.resetButton.disabled = !edited;
  }

  showSave(state) {
    this.saveState.hidden = state === "idle";
    this.saveState.dataset.state = state;
    this.saveState.disabled = state !== "failed";
    this.saveState.textContent = state === "idle" ? "" : SAVE_LABELS[state];
    this.saveState.title = state === "failed" ? gettext("Черновик не сохранился — нажмите, чтобы повторить") : "";
    clearTimeout(this.saveFade);
    if (state === "saved") this.saveFade = setTimeout(() => this.showSave("idle"), 2500);
  }

  /** POST the draft if it changed; resolves when saved (or failed). */
  async save({ keepalive = false } = {}) {
    clearTimeout(this.saveTimer);
    if (this.saving) await this.saving;
    const code = this.code();
    if (code === this.savedCode) return;
    this.showSave("saving");
    const url = `/courses/${encodeURIComponent(live.course)}/${encodeURIComponent(live.chapter)}/cells/${encodeURIComponent(this.key)}/draft`;
    this.saving = fetch(url, {
      method: "POST",
      credentials: "same-origin",
      keepalive,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: JSON.stringify({ code }),
    })
      .then((response) => {
        if (!response.ok) throw new Error(`draft: HTTP ${response.status}`);
        this.savedCode = code;
        this.showSave(this.code() === code ? "saved" : "saving");
      })
      .catch((error) => {
        console.warn(error);
        this.showSave("failed");
      })
      .finally(() => {
        this.saving = null;
      });
    await this.saving;
  }

  pendingSave() {
    return Boolean(this.editor) && this.code() !== this.savedCode;
  }

  reset() {
    const original = this.data.original ?? "";
    if (!this.editor || this.code() === original) return;
    this.editor.set(original);
    this.flash(gettext("Исходный код восстановлен (Ctrl+Z — вернуть ваш)"));
    this.editor.focus();
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.code());
      this.flash(gettext("Скопировано"));
    } catch (error) {
      console.warn(error);
    }
  }

  flash(text) {
    if (this.runId) return; // the running status matters more
    this.status.textContent = text;
    this.status.dataset.kind = "note";
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => {
      if (!this.runId && this.status.dataset.kind === "note") this.status.textContent = "";
    }, 3000);
  }

  // --- running --------------------------------------------------------------------------

  focusNext() {
    const index = cells.indexOf(this);
    const next = cells.slice(index + 1).find((c) => c.editor && c.figure.offsetParent !== null);
    if (!next) return;
    next.editor.focus();
    next.figure.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  run() {
    if (this.runId || !this.editor) return;
    // Only the broker this cell needs: the chapter's others start when their cells run (or from the panel).
    if (this.broker) live.ensure([this.broker]);
    else live.ensureChapter();
    const id = newRunId();
    const sent = live.send({
      type: "cell.run",
      run: id,
      course: live.course,
      chapter: live.chapter,
      cell: this.key,
      code: this.code(),
    });
    this.clearOutput();
    forget("output", this.key); // a run replaces the kept output, even one that never finishes
    if (!sent) {
      this.output.hidden = false;
      this.appendNote(gettext("Нет связи с сервером. Дождитесь, пока индикатор станет зелёным, и повторите."), "cell-error");
      this.setExit({ kind: "error", text: pgettext("exit", "нет связи") });
      return;
    }
    this.save();
    this.begin(id);
  }

  /** Show the cell as running under run id ``id`` (the learner's run, or a setup the server started). */
  begin(id) {
    runs.set(id, this);
    this.runId = id;
    this.started = performance.now();
    this.sawOutput = false;
    this.figure.classList.add("is-running");
    this.prompt.textContent = "[*]";
    this.runButton.hidden = true;
    this.stopButton.hidden = false;
    this.stopButton.disabled = false;
    this.stopButton.querySelector(".label").textContent = gettext("Прервать");
    this.status.dataset.kind = "running";
    this.tick();
    this.ticker = setInterval(() => this.tick(), 250);
    if (this.role === "setup") setupFoldShow(this, "running");
  }

  tick() {
    const elapsed = formatDuration(Math.floor((performance.now() - this.started) / 1000) * 1000);
    const sandbox = live.sandbox(this.broker);
    let text;
    if (!this.sawOutput && sandbox?.state !== "ready") text = gettext("ждём песочницу: {stage} · {t}", { stage: stageLabel(sandbox), t: elapsed });
    else text = gettext("выполняется · {t}", { t: elapsed });
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  interrupt() {
    if (!this.runId) return;
    live.send({ type: "cell.interrupt", run: this.runId });
    this.stopButton.disabled = true;
    this.stopButton.querySelector(".label").textContent = gettext("Прерываю…");
  }

  clearOutput() {
    this.output.querySelector(".cell-hint")?.remove();
    this.stream.replaceChildren();
    this.tailBox.replaceChildren();
    this.gap.hidden = true;
    this.exit.replaceChildren();
    this.output.hidden = true;
    this.output.classList.remove("has-error", "is-restored");
    this.resetOutputState();
    unpainted.delete(this);
    this.lastStream = null;
    this.lastText = null;
  }

  /**
   * Take a chunk of stdout or stderr (several lines may come at once); it is drawn on the next frame.
   * ``part`` is the rest of the cell.output frame: past the head, ``tail`` and ``skipped`` lines.
   */
  write(stream, text, part = {}) {
    if (!text && !part.skipped && !part.skipped_chars) return;
    this.output.hidden = false;
    this.sawOutput = true;
    this.queue.push([stream, text || "", part]);
    paintSoon(this);
  }

  /** Draw what arrived since the last frame: the head as written, the tail redrawn once. */
  paint() {
    unpainted.delete(this);
    if (!this.queue.length) return;
    const box = this.scroller;
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    let tailChanged = false;
    for (const [stream, text, part] of this.queue) {
      if (!part.tail && !this.inTail && this.headChars + text.length <= HEAD_MAX_CHARS) {
        this.headChars += text.length;
        this.drawPiece(stream, text);
      } else {
        this.inTail = true;
        this.addToTail(stream, text, Number(part.skipped) || 0, Number(part.skipped_chars) || 0);
        tailChanged = true;
      }
    }
    this.queue = [];
    if (tailChanged) this.renderTail();
    if (stick) box.scrollTop = box.scrollHeight;
  }

  /** Draw one piece in the head and remember it for keeping. */
  drawPiece(stream, text) {
    this.headPieces.push([stream, text]);
    if (stream.startsWith("note:")) {
      this.stream.append(el("span", stream.slice(5), text));
      this.lastStream = null;
    } else if (stream === "stderr") this.writeStderr(text);
    else this.appendText("stdout", text);
  }

  /** The same rolling window as the agent's: after a gap the tail starts again; beyond its size the oldest lines go. */
  addToTail(stream, text, skipped, skippedChars) {
    if (skipped || skippedChars) {
      // Lines were left out after what the tail holds: all of it is older than the gap.
      this.hiddenLines += skipped + this.tailLines.filter((l) => l.text.endsWith("\n")).length;
      this.hiddenChars += skippedChars + this.tailChars;
      this.tailLines = [];
      this.tailChars = 0;
    }
    for (const line of text.split(/(?<=\n)/)) {
      if (!line) continue;
      const last = this.tailLines[this.tailLines.length - 1];
      if (last && !last.text.endsWith("\n") && last.stream === stream) last.text += line;
      else this.tailLines.push({ stream, text: line });
      this.tailChars += line.length;
    }
    while (this.tailLines.length > TAIL_LINES) this.dropTailLine();
    while (this.tailChars > TAIL_CHARS) {
      if (this.tailLines.length > 1) {
        this.dropTailLine();
      } else {
        const only = this.tailLines[0];
        const over = this.tailChars - TAIL_CHARS;
        only.text = only.text.slice(over);
        this.tailChars -= over;
        this.hiddenChars += over;
      }
    }
  }

  dropTailLine() {
    const line = this.tailLines.shift();
    if (line.text.endsWith("\n")) this.hiddenLines += 1;
    this.hiddenChars += line.text.length;
    this.tailChars -= line.text.length;
  }

  /** Redraw the tail (at most TAIL_LINES lines) and the count above it. */
  renderTail() {
    // The stderr formatting writes into this.stream: the tail borrows it, so a traceback at the
    // end of a long output is picked out the same way as one in the head.
    const head = [this.stream, this.lastStream, this.lastText];
    this.stream = this.tailBox;
    this.lastStream = null;
    this.tailBox.replaceChildren();
    try {
      for (const { stream, text } of this.tailLines) {
        if (stream.startsWith("note:")) {
          this.stream.append(el("span", stream.slice(5), text));
          this.lastStream = null;
        } else if (stream === "stderr") this.writeStderr(text);
        else this.appendText("stdout", text);
      }
    } finally {
      [this.stream, this.lastStream, this.lastText] = head;
    }
    const lines = this.hiddenLines;
    const chars = this.hiddenChars;
    this.gap.hidden = !(lines || chars);
    if (lines) this.gap.textContent = ngettext("… {n} строка не показана …", "… {n} строк не показано …", lines);
    else if (chars) this.gap.textContent = ngettext("… {n} символ не показан …", "… {n} символов не показано …", chars);
  }

  appendText(stream, text) {
    if (this.lastStream === stream && this.lastText) {
      this.lastText.appendData(text);
      return;
    }
    const span = el("span", `out-${stream}`);
    this.lastText = document.createTextNode(text);
    span.append(this.lastText);
    this.stream.append(span);
    this.lastStream = stream;
  }

  /** stderr in red, with the lines of a traceback that matter picked out. */
  writeStderr(text) {
    for (const line of text.split(/(?<=\n)/)) {
      const file = TRACE_FILE.exec(line.replace(/\n$/, ""));
      if (file) {
        const span = el("span", "out-stderr tb-frame");
        const here = file[2].includes("<cell") || file[2].includes(this.key);
        span.append(file[1]);
        span.append(el("span", "tb-file", file[2]));
        span.append(file[3]);
        if (here) {
          const jump = el("button", "tb-line link", file[4]);
          jump.type = "button";
          jump.addEventListener("click", () => this.goToLine(Number(file[4])));
          span.append(jump);
        } else {
          span.append(file[4]);
        }
        span.append(file[5] + (line.endsWith("\n") ? "\n" : ""));
        this.stream.append(span);
        this.lastStream = null;
      } else if (TRACE_EXCEPTION.test(line)) {
        this.stream.append(el("span", "out-stderr tb-exception", line));
        this.lastStream = null;
        this.output.classList.add("has-error");
      } else {
        this.appendText("stderr", line);
      }
    }
  }

  goToLine(number) {
    this.editor?.goToLine(number);
  }

  appendNote(text, className) {
    this.paint();
    if (this.inTail) {
      this.addToTail(`note:${className}`, text + "\n", 0, 0);
      this.renderTail();
    } else {
      this.drawPiece(`note:${className}`, text + "\n");
    }
  }

  finish(exit) {
    this.paint();
    clearInterval(this.ticker);
    runs.delete(this.runId);
    this.runId = null;
    this.figure.classList.remove("is-running");
    executionCount += 1;
    this.prompt.textContent = `[${executionCount}]`;
    this.runButton.hidden = false;
    this.stopButton.hidden = true;
    this.status.textContent = "";
    this.status.dataset.kind = "";
    this.setExit(exit);
    if (this.role === "setup") setupFoldShow(this, exit.kind === "ok" ? "ok" : "fail");
    this.keepOutput(exit);
  }

  // --- the last output, kept for the next visit ------------------------------------------------

  keepOutput(exit) {
    const tail = this.tailLines.map((l) => [l.stream, l.text]);
    const kept = boundForKeeping(this.headPieces, tail, [this.hiddenLines, this.hiddenChars]);
    keep("output", this.key, { v: 1, at: Date.now(), ...kept, exit });
  }

  restoreOutput() {
    const kept = recall("output", this.key);
    if (!kept || kept.v !== 1 || !kept.exit) return;
    try {
      for (const [stream, text] of kept.head || []) this.drawPiece(String(stream), String(text));
      [this.hiddenLines, this.hiddenChars] = kept.hidden || [0, 0];
      for (const [stream, text] of kept.tail || []) this.addToTail(String(stream), String(text), 0, 0);
      if (this.tailLines.length || this.hiddenLines || this.hiddenChars) {
        this.inTail = true;
        this.renderTail();
      }
      const hint = kept.exit.hint ? hintNode(kept.exit.hint) : null;
      if (hint) this.exit.before(hint);
      this.output.hidden = false;
      this.output.classList.add("is-restored");
      this.setExit({ ...kept.exit, at: kept.at });
    } catch (error) {
      console.warn("cells: a kept output could not be shown", error);
      this.clearOutput();
      forget("output", this.key);
    }
  }

  setExit({ kind, text, title, duration, truncated, at }) {
    this.output.hidden = false;
    const badge = el("span", `exit-badge exit-${kind}`);
    badge.append(icon(EXIT_ICONS[kind] || "cross"), text);
    if (title) badge.title = title;
    const parts = [badge];
    if (duration != null) parts.push(el("span", "exit-duration", gettext("за {t}", { t: formatDuration(duration) })));
    if (truncated) {
      const cut = el("span", "exit-cut");
      cut.append(icon("cut"), gettext("вывод обрезан"));
      cut.title = gettext("Вывод слишком длинный: показаны его первые и последние строки.");
      parts.push(cut);
    }
    if (kind === "ok" && !this.stream.childNodes.length && !this.tailLines.length) parts.push(el("span", "exit-quiet", gettext("Ячейка ничего не вывела.")));
    if (at) {
      const when = new Date(at);
      const label = el("span", "exit-when", gettext("прошлый запуск, {when}", { when: when.toLocaleString(LANG, { dateStyle: "short", timeStyle: "short" }) }));
      label.title = gettext("Вывод сохранён в этом браузере; запустите ячейку, чтобы получить новый.");
      parts.push(label);
    }
    this.exit.replaceChildren(...parts);
  }

  onExit(frame) {
    const status = frame.status;
    let kind;
    let text;
    if (frame.reason === "timeout") [kind, text] = ["timeout", gettext("время вышло")];
    else if (frame.reason === "output") [kind, text] = ["output", gettext("лимит вывода")];
    else if (frame.reason === "interrupted") [kind, text] = ["interrupted", gettext("прервано")];
    else if (frame.reason === "memory") [kind, text] = ["fail", gettext("не хватило памяти")];
    else if (frame.reason === "killed") [kind, text] = ["fail", gettext("процесс остановлен")];
    else if (status === 0) [kind, text] = ["ok", gettext("{status}", { status: 0 })];
    else [kind, text] = ["fail", gettext("{status}", { status: status ?? "?" })];
    const duration = typeof frame.duration_ms === "number" ? frame.duration_ms : performance.now() - this.started;
    const hint = frame.hint ? hintNode(frame.hint) : null;
    if (hint) this.exit.before(hint); // apart from the output: what to do about the error above it
    const title = frame.reason === "output" ? gettext("Ячейка вывела слишком много и была остановлена.") : `${gettext("Код завершения процесса")}: ${status ?? "—"}`;
    this.finish({ kind, text, title, duration, truncated: Boolean(frame.truncated), ...(hint ? { hint: frame.hint } : {}) });
  }

  onError(frame) {
    this.output.hidden = false;
    this.appendNote(frame.message || pgettext("exit", "ошибка"), "cell-error");
    this.finish({ kind: "error", text: pgettext("exit", "ошибка") });
  }

  onLost() {
    this.appendNote(gettext("Связь с сервером прервалась; результат запуска неизвестен. Запустите ячейку ещё раз."), "cell-error");
    this.finish({ kind: "error", text: pgettext("exit", "нет связи") });
  }
}

class Check {
  constructor(section, key) {
    this.section = section;
    this.key = key;
    const title = exerciseData[key]?.title || key;
    this.bar = el("div", "exercise-check");
    this.verdict = el("div", "check-verdict");
    this.verdict.setAttribute("role", "status");
    this.verdict.hidden = true;
    if (anonymous) {
      const link = el("a", "button subtle");
      link.href = panel?.dataset.loginUrl || "/accounts/login/";
      link.textContent = gettext("Войдите, чтобы проверить решение");
      this.bar.append(link);
    } else {
      this.button = button("button check-button", gettext("Проверить"), "check", gettext("Проверить решение упражнения «{title}» на вашем брокере", { title }));
      this.state = el("span", "check-state muted");
      this.button.addEventListener("click", () => this.check());
      this.bar.append(this.button, this.state);
    }
    this.bar.append(this.verdict);
    // After the learner's own cell, before the hints and the solution.
    // (an exercise done in the terminal: after its starter commands)
    const starter = section.querySelector("figure.cell-starter, [data-terminal-command][data-role=starter]");
    const anchor = starter || section.querySelector("details.solution") || null;
    if (starter) starter.after(this.bar);
    else if (anchor) anchor.before(this.bar);
    else section.append(this.bar);
    // A check passed before stays passed on the next visit.
    if (exerciseData[key]?.passed) this.show({ passed: true });
  }

  async check() {
    if (this.pending) return;
    this.pending = true;
    this.button.disabled = true;
    this.state.textContent = gettext("проверяю…");
    this.bar.classList.add("is-checking");
    this.verdict.hidden = true;
    // The check reads the broker, but drafts should be on the server too before it looks.
    await Promise.all(cells.filter((c) => c.pendingSave()).map((c) => c.save()));
    // Only the exercise's own broker (its cells' or terminal blocks'): not every sandbox of the chapter.
    const own = [...new Set([...this.section.querySelectorAll("[data-broker]")].map((node) => node.dataset.broker).filter(Boolean))];
    if (own.length) live.ensure(own);
    else live.ensureChapter();
    const sent = live.send({ type: "exercise.check", course: live.course, chapter: live.chapter, exercise: this.key });
    if (!sent) {
      this.show({ passed: false, reason: gettext("Нет связи с сервером. Дождитесь, пока индикатор станет зелёным, и повторите.") });
      return;
    }
    this.timer = setTimeout(() => this.show({ passed: false, reason: gettext("Сервер не ответил. Попробуйте ещё раз.") }), CHECK_TIMEOUT_MS);
  }

  show(result) {
    clearTimeout(this.timer);
    this.pending = false;
    this.bar.classList.remove("is-checking");
    if (this.button) this.button.disabled = false;
    if (this.state) this.state.textContent = "";
    this.verdict.hidden = false;
    this.verdict.className = `check-verdict ${result.passed ? "is-pass" : "is-fail"}`;
    const head = el("strong", "check-head", result.passed ? `✓ ${gettext("Принято!")}` : `✗ ${gettext("Пока не получилось")}`);
    const parts = [head];
    if (result.reason) parts.push(el("span", "check-reason", result.reason));
    this.verdict.replaceChildren(...parts);
    this.section.classList.toggle("is-passed", Boolean(result.passed));
  }

  lost() {
    if (this.pending) this.show({ passed: false, reason: gettext("Связь с сервером прервалась; результат запуска неизвестен. Запустите ячейку ещё раз.") });
  }
}

// --- setup cells: the server runs them before a chapter's first cell on a broker --------

const SETUP_STATES = { running: gettext("выполняется…"), ok: gettext("выполнена"), fail: gettext("не удалась") };

/** The closed fold around a setup cell says whether it ran; a failed one opens to show why. */
function setupFoldShow(cell, state) {
  const fold = cell.figure.closest("details.setup");
  const summary = fold?.querySelector("summary");
  if (!summary) return;
  let note = summary.querySelector(".setup-state");
  if (!note) {
    note = el("span", "setup-state");
    summary.append(" ", note);
  }
  note.dataset.state = state;
  note.textContent = SETUP_STATES[state];
  if (state === "fail") fold.open = true;
}

// cell.setup {cell, setup_run}: the setup cell's output and exit follow under run id setup_run.
live.on("cell.setup", (frame) => {
  const cell = cells.find((c) => c.key === frame.cell);
  if (!cell?.editor || cell.runId) return;
  cell.clearOutput();
  cell.begin(frame.setup_run);
});

// --- wiring -----------------------------------------------------------------------------

live.on("cell.output", (frame) => runs.get(frame.run)?.write(frame.stream === "stderr" ? "stderr" : "stdout", frame.text, frame));
live.on("cell.exit", (frame) => runs.get(frame.run)?.onExit(frame));
live.on("cell.error", (frame) => runs.get(frame.run)?.onError(frame));
live.on("exercise.result", (frame) => checks.get(frame.exercise)?.show(frame));
live.on("connection.lost", () => {
  for (const cell of [...runs.values()]) cell.onLost();
  for (const check of checks.values()) check.lost();
});

for (const figure of document.querySelectorAll("figure.cell[data-cell]")) {
  const data = byKey.get(figure.dataset.cell);
  if (!data || !RUNNABLE.has(data.role || figure.dataset.role)) continue;
  cells.push(new Cell(figure, data));
}
for (const section of document.querySelectorAll("section.exercise[data-exercise]")) {
  checks.set(section.dataset.exercise, new Check(section, section.dataset.exercise));
}

if (anonymous) {
  const loginUrl = panel?.dataset.loginUrl || "/accounts/login/";
  for (const cell of cells) cell.mountReadOnly(loginUrl);
} else if (cells.length) {
  const mountAll = (makeEditor) => {
    for (const cell of cells) {
      try {
        cell.mount(makeEditor);
      } catch (error) {
        console.error(error);
      }
      cell.figure.classList.remove("is-loading");
    }
  };
  for (const cell of cells) cell.figure.classList.add("is-loading");
  // CodeMirror styles itself with a constructable stylesheet (the CSP forbids <style>);
  // where a browser cannot adopt one on the document, the textarea does the job.
  if ("adoptedStyleSheets" in Document.prototype) {
    Promise.all([import("../vendor/codemirror.js"), import("./editor-setup.js")])
      .then(([CM, { editorBasics }]) =>
        mountAll((host, options) => codeMirrorEditor({ CM, editorBasics }, host, options)),
      )
      .catch((error) => {
        console.error("cells: the editor did not load", error);
        mountAll(textareaEditor);
      });
  } else {
    mountAll(textareaEditor);
  }
  // Leaving the page: send what is still unsaved (keepalive outlives the page).
  window.addEventListener("pagehide", () => {
    for (const cell of cells) if (cell.pendingSave()) cell.save({ keepalive: true });
  });
}
