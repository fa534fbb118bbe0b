// The page's one WebSocket (/ws/live/): reconnects with backoff, hands each frame to the
// modules subscribed to its type, keeps the latest state of each sandbox, and shows the
// connection state in every [data-live-indicator].
import { gettext, pgettext, stageName, stateLabel } from "./i18n.js";

const panel = document.querySelector("[data-live-panel]");
const article = document.querySelector("article.chapter");
/** False for anonymous visitors: the server would refuse them, so no socket is opened. */
const enabled = Boolean(panel && article && !panel.hasAttribute("data-anonymous"));

const CLOSE_UNAUTHENTICATED = 4401; // sandboxes/consumers.py
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];

const handlers = new Map(); // frame type (or "*") -> Set of functions
const statusHandlers = new Set();
const sandboxes = new Map(); // broker -> latest sandbox dict
const kept = new Map(); // broker -> {saved_at, size_bytes, in_use}: data a stopped broker keeps for its next start
const brokerById = new Map(); // sandbox id -> broker, for frames that name only the sandbox
const ensured = new Set(); // brokers asked for on this connection
let queued = []; // frames sent while the socket was still connecting
let socket = null;
let status = enabled ? "connecting" : "disabled";
let attempt = 0;
let retryAt = 0;
let retryTimer = 0;
/** The server's channel layer lost Redis (live.paused): the socket stays, sandbox states wait for its return. */
let paused = false;

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/live/`;
}

function setStatus(next) {
  status = next;
  renderIndicators();
  for (const fn of statusHandlers) call(fn, status);
}

function call(fn, arg) {
  try {
    fn(arg);
  } catch (error) {
    // One broken subscriber must not starve the others of frames.
    console.error(error);
  }
}

function dispatch(frame) {
  if (frame.type === "live.paused" || frame.type === "live.resumed" || frame.type === "connection.lost") {
    paused = frame.type === "live.paused";
    renderIndicators();
  }
  if (frame.type === "hello") {
    sandboxes.clear();
    for (const sandbox of frame.sandboxes || []) remember(sandbox);
    rememberKept(frame.kept);
  } else if (frame.type === "sandbox.state") {
    remember(frame.sandbox);
  } else if (frame.type === "sandbox.kept") {
    rememberKept(frame.kept);
  }
  for (const fn of handlers.get(frame.type) || []) call(fn, frame);
  for (const fn of handlers.get("*") || []) call(fn, frame);
}

function rememberKept(map) {
  kept.clear();
  for (const [broker, data] of Object.entries(map || {})) kept.set(broker, data);
}

function remember(sandbox) {
  if (!sandbox || !sandbox.broker) return;
  sandboxes.set(sandbox.broker, sandbox);
  if (sandbox.id != null) brokerById.set(sandbox.id, sandbox.broker);
}

function connect() {
  clearTimeout(retryTimer);
  setStatus("connecting");
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (error) {
    console.error(error);
    scheduleRetry();
    return;
  }
  socket = ws;
  ws.addEventListener("open", () => {
    if (socket !== ws) return;
    attempt = 0;
    ensured.clear();
    setStatus("open");
    for (const text of queued) ws.send(text);
    queued = [];
  });
  ws.addEventListener("message", (event) => {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (error) {
      console.error("live: not JSON", error);
      return;
    }
    if (frame && typeof frame.type === "string") dispatch(frame);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    queued = [];
    dispatch({ type: "connection.lost" });
    if (event.code === CLOSE_UNAUTHENTICATED) {
      setStatus("unauthorized");
      return;
    }
    scheduleRetry();
  });
}

function scheduleRetry() {
  const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
  attempt += 1;
  const delay = Math.round(base * (0.8 + Math.random() * 0.4)); // jitter, so a restarted server is not stampeded
  retryAt = Date.now() + delay;
  setStatus("closed");
  retryTimer = setTimeout(connect, delay);
}

function retryNow() {
  if (status === "closed") connect();
}

/** Send one frame; true when it went out (or will, once the socket being opened is open). */
function send(frame) {
  const text = JSON.stringify(frame);
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(text);
    return true;
  }
  if (status === "connecting") {
    queued.push(text);
    return true;
  }
  return false;
}

/** Subscribe to frames of ``type`` ("*" for all); returns the unsubscribe function. */
function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
  return () => handlers.get(type).delete(fn);
}

function onStatus(fn) {
  statusHandlers.add(fn);
  return () => statusHandlers.delete(fn);
}

let brokersCache = null;
/** The chapter's broker first, then every other broker its cells use. */
function chapterBrokers() {
  if (brokersCache) return brokersCache;
  const found = [];
  if (article && article.dataset.broker) found.push(article.dataset.broker);
  const data = document.getElementById("chapter-cells");
  if (data) {
    try {
      for (const cell of JSON.parse(data.textContent)) if (cell.broker) found.push(cell.broker);
    } catch (error) {
      console.error(error);
    }
  }
  brokersCache = [...new Set(found)];
  return brokersCache;
}

const ENSURE_AGAIN = new Set(["stopped", "stopping", "failed"]);

/** Ask for a sandbox of each broker not yet asked for on this connection (or gone since). */
function ensure(brokers) {
  for (const broker of brokers) {
    const state = sandboxes.get(broker)?.state;
    if (ensured.has(broker) && !ENSURE_AGAIN.has(state)) continue;
    if (send({ type: "sandbox.ensure", broker })) ensured.add(broker);
  }
}

// The indicator: a dot and a short label; offline it counts down to the next attempt.
const indicators = [...document.querySelectorAll("[data-live-indicator]")];
for (const box of indicators) {
  box.classList.add("live-indicator");
  box.setAttribute("role", "status");
  const dot = document.createElement("span");
  dot.className = "live-dot";
  dot.setAttribute("aria-hidden", "true");
  const label = document.createElement("span");
  label.className = "live-label";
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "link live-retry";
  retry.textContent = gettext("Повторить");
  retry.addEventListener("click", () => {
    attempt = 0;
    retryNow();
  });
  const login = document.createElement("a");
  login.className = "live-login";
  login.textContent = gettext("Войти снова");
  login.href = panel?.dataset.loginUrl || "/accounts/login/";
  box.replaceChildren(dot, label, retry, login);
}
const CONNECTION_LABELS = {
  open: gettext("на связи"),
  connecting: gettext("подключение…"),
  closed: pgettext("connection", "нет связи"),
  unauthorized: gettext("сессия истекла"),
};
let countdown = 0;
function renderIndicators() {
  clearInterval(countdown);
  const paint = () => {
    for (const box of indicators) {
      box.hidden = status === "disabled";
      box.dataset.status = status;
      const label = box.querySelector(".live-label");
      if (status === "closed") {
        const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        label.textContent = s > 0 ? gettext("нет связи · повтор через {s} с", { s }) : gettext("подключение…");
      } else if (status === "open" && paused) {
        label.textContent = gettext("на связи · обновления приостановлены");
      } else {
        label.textContent = CONNECTION_LABELS[status] ?? status;
      }
      box.dataset.paused = String(status === "open" && paused);
      if (status === "open" && paused) {
        box.title = gettext(
          "Сервер восстанавливает связь с очередью событий: состояние песочниц обновится, когда она вернётся. Ячейки и сообщения брокера идут как прежде.",
        );
      } else {
        box.removeAttribute("title");
      }
      box.querySelector(".live-retry").hidden = status !== "closed";
      box.querySelector(".live-login").hidden = status !== "unauthorized";
    }
  };
  paint();
  if (status === "closed") countdown = setInterval(paint, 1000);
}

/** What a sandbox is doing, in the page's language: ours for a known stage, else the server's label. */
export function stageLabel(sandbox) {
  if (!sandbox) return gettext("в очереди");
  if (sandbox.state === "ready") return gettext("готово");
  if (sandbox.stage && stageName(sandbox.stage)) return stageName(sandbox.stage);
  if (sandbox.stage_label) return sandbox.stage_label;
  return stateLabel(sandbox.state || "");
}

export const live = {
  enabled,
  on,
  onStatus,
  send,
  ensure,
  chapterBrokers,
  /** Ask for every sandbox the chapter needs (first run, or the Start button). */
  ensureChapter: () => ensure(chapterBrokers()),
  /** The latest known state of the sandbox for ``broker`` (undefined when there is none). */
  sandbox: (broker) => sandboxes.get(broker),
  sandboxes: () => [...sandboxes.values()],
  /** The data kept for ``broker``'s next start ({saved_at, size_bytes, in_use}), or undefined. */
  kept: (broker) => kept.get(broker),
  /** The broker of sandbox ``id`` (frames carry it too; this covers those that do not). */
  brokerOf: (id) => brokerById.get(id),
  get status() {
    return status;
  },
  get course() {
    return article?.dataset.course || "";
  },
  get chapter() {
    return article?.dataset.chapter || "";
  },
};

if (enabled) {
  window.addEventListener("online", () => {
    attempt = 0;
    retryNow();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") retryNow();
  });
  connect();
} else {
  renderIndicators();
}
