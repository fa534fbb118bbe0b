// The chapter editor: front matter fields + Markdown body, live preview from the server's own
// renderer, save with conflict handling (Ctrl+S), draft cells run in the instructor's sandbox,
// and exercises proven on a fresh broker.
import { gettext } from "./i18n.js";

const root = document.querySelector("[data-editor]");

function csrf() {
  const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function postJSON(url, data) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(data),
    credentials: "same-origin",
  });
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON: keep the status */ }
  return { status: response.status, body };
}

if (root) {
  const state = JSON.parse(document.getElementById("editor-state").textContent);
  let revision = state.revision;
  let saveUrl = root.dataset.saveUrl;
  const body = root.querySelector("[data-body]");
  const preview = root.querySelector("[data-preview]");
  const previewTitle = root.querySelector("[data-preview-title]");
  const problems = root.querySelector("[data-problems]");
  const status = root.querySelector("[data-save-status]");
  const conflict = root.querySelector("[data-conflict]");
  const metaInputs = [...root.querySelectorAll("[data-meta]")];
  const assetBase = root.dataset.assetBase.replace(/x$/, "");
  let dirty = false;
  let lastConflict = null;

  function fill(values) {
    for (const input of metaInputs) {
      const v = values.meta[input.dataset.meta];
      input.value = input.dataset.meta === "objectives" ? (v || []).join("\n") : v ?? "";
    }
    body.value = values.body;
  }

  function collect() {
    const meta = {};
    for (const input of metaInputs) {
      const key = input.dataset.meta;
      meta[key] = key === "objectives" ? input.value.split("\n").map((s) => s.trim()).filter(Boolean) : input.value;
    }
    return { meta, body: body.value, revision, asset_base: assetBase };
  }

  function showProblems(list) {
    problems.replaceChildren(
      ...list.map((p) => {
        const li = document.createElement("li");
        li.textContent = p.line ? `${gettext("строка")} ${p.line}: ${p.message}` : p.message;
        return li;
      }),
    );
  }

  function setStatus(text, kind = "") {
    status.textContent = text;
    status.className = `save-status ${kind}`;
  }

  let previewTimer = null;
  let previewSeq = 0;
  async function refreshPreview() {
    const seq = ++previewSeq;
    const data = collect();
    const { body: answer } = await postJSON(root.dataset.previewUrl, data);
    if (seq !== previewSeq) return; // a newer edit already asked
    previewTitle.textContent = data.meta.title;
    // The server's renderer sanitised this HTML (nh3): it is the same markup learners get.
    preview.innerHTML = answer.html || "";
    showProblems(answer.problems || []);
    decoratePreview();
  }

  function changed() {
    dirty = true;
    setStatus(gettext("не сохранено"), "dirty");
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, 250);
  }

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
      root.querySelector("[data-conflict-diff]").textContent = answer.diff;
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
  body.addEventListener("input", changed);
  body.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && !event.shiftKey) {
      event.preventDefault();
      body.setRangeText("    ", body.selectionStart, body.selectionEnd, "end");
      changed();
    }
  });
  for (const input of metaInputs) input.addEventListener("input", changed);

  // -- draft cells run in the instructor's own sandbox, over the live WebSocket --------------
  let socket = null;
  const runs = new Map();
  function live() {
    if (socket && socket.readyState <= 1) return socket;
    socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/live/`);
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      const out = runs.get(message.run);
      if (!out) return;
      if (message.type === "cell.output") {
        const span = document.createElement("span");
        if (message.stream === "stderr") span.className = "stderr";
        span.textContent = message.text;
        out.append(span);
      } else if (message.type === "cell.exit" || message.type === "cell.error") {
        const end = document.createElement("div");
        end.textContent = message.type === "cell.error" ? message.message : `→ ${gettext("код выхода")} ${message.status}${message.reason ? ` (${message.reason})` : ""}`;
        out.append(end);
      }
    });
    return socket;
  }

  function send(message) {
    const ws = live();
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
    else ws.addEventListener("open", () => ws.send(JSON.stringify(message)), { once: true });
  }

  function decoratePreview() {
    for (const figure of preview.querySelectorAll("figure.cell")) {
      const bar = document.createElement("div");
      bar.className = "draft-run";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small";
      button.textContent = `▶ ${gettext("Запустить в моей песочнице")} (${figure.dataset.broker})`;
      const out = document.createElement("pre");
      out.className = "draft-output";
      out.hidden = true;
      button.addEventListener("click", () => {
        const id = `draft-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
        out.hidden = false;
        out.replaceChildren();
        runs.set(id, out);
        send({ type: "cell.run", run: id, draft: true, broker: figure.dataset.broker, timeout: Number(figure.dataset.timeout) || 30, code: figure.querySelector("pre").textContent });
      });
      bar.append(button);
      figure.after(bar, out);
    }
    if (!root.dataset.verifyBase) return;
    for (const section of preview.querySelectorAll("section.exercise")) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button subtle small";
      button.textContent = gettext("Проверить упражнение на чистом брокере");
      const report = document.createElement("div");
      report.className = "verify-report";
      button.addEventListener("click", () => verify(section.dataset.exercise, report, button));
      section.append(button, report);
    }
  }

  async function verify(key, report, button) {
    if (dirty) {
      report.textContent = gettext("Сначала сохраните главу: проверяется сохранённая версия.");
      return;
    }
    button.disabled = true;
    report.textContent = gettext("Запускаю чистый брокер…");
    const { body: job } = await postJSON(`${root.dataset.verifyBase}${key}/verify`, {});
    for (let i = 0; i < 300; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const answer = await (await fetch(job.poll, { credentials: "same-origin" })).json();
      if (answer.state === "pending") continue;
      button.disabled = false;
      report.replaceChildren();
      if (answer.state !== "done") {
        report.textContent = answer.error || "error";
        return;
      }
      const r = answer.report;
      const line = (ok, text) => {
        const p = document.createElement("p");
        p.className = ok ? "pass" : "fail";
        p.textContent = `${ok ? "✓" : "✗"} ${text}`;
        return p;
      };
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
    button.disabled = false;
  }

  fill(state);
  refreshPreview();
}
