// The sandbox block of the live panel: one row per broker the chapter uses, with its state,
// provisioning stage and progress, idle countdown, and Start / Stop / Reset / Extend.
import { live, stageLabel } from "./live.js";
import { gettext, pgettext, brokerName, stateLabel, formatClock } from "./i18n.js";
import { el, button, icon, iconButton } from "./dom.js";

const aside = document.querySelector("[data-live-panel]");
const ACTION_TIMEOUT_MS = 10_000;

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

const sandboxBox = aside?.querySelector("[data-sandbox-status]");
const sandboxText = sandboxBox?.querySelector("[data-sandbox-text]");
const alertBox = el("div", "live-alert");
alertBox.setAttribute("role", "alert");
alertBox.hidden = true;
const startAll = button("button sb-start-all", gettext("Запустить песочницу"));
startAll.hidden = true;
const cardList = el("div", "sb-list");
const cards = new Map(); // broker -> {card, parts...}
const pendingAction = new Map(); // broker -> action just sent (until the next state)

function sandboxCard(broker) {
  if (cards.has(broker)) return cards.get(broker);
  const card = el("div", "sb-card");
  card.dataset.broker = broker;
  const head = el("div", "sb-head");
  const name = el("span", `sb-broker broker-${broker}`, brokerName(broker));
  const state = el("span", "sb-state");
  const dot = el("span", "sb-dot");
  dot.setAttribute("aria-hidden", "true");
  const stateText = el("span", "sb-state-text");
  state.append(dot, stateText);
  const idle = el("span", "sb-idle");
  const idleText = el("span", "sb-idle-text");
  const extend = button("sb-extend link", gettext("Продлить"), gettext("Отложить автоматическую остановку"));
  idle.append(icon("clock"), idleText, extend);
  const actions = el("span", "sb-actions");
  const start = button("sb-btn sb-start", pgettext("sandbox", "Запустить"));
  const stop = iconButton("sb-icon sb-stop", "stop", gettext("Остановить"));
  const reset = iconButton("sb-icon sb-reset", "reset", gettext("Перезапустить брокер с чистого листа: все топики, очереди и сообщения удалятся"));
  const confirm = button("sb-btn sb-confirm", gettext("Точно сбросить?"), gettext("Перезапустить брокер с чистого листа: все топики, очереди и сообщения удалятся"));
  confirm.hidden = true;
  actions.append(start, stop, reset, confirm);
  head.append(name, state, idle, actions);
  const stage = el("div", "sb-stage");
  const progress = el("div", "sb-progress");
  const bar = el("div", "sb-progress-bar");
  progress.append(bar);
  progress.setAttribute("role", "progressbar");
  progress.setAttribute("aria-valuemin", "0");
  progress.setAttribute("aria-valuemax", "100");
  const error = el("div", "sb-error");
  // The broker's own web console (RabbitMQ's management UI, NATS' monitoring), proxied for this learner only.
  const consoleLink = el("a", "sb-console", gettext("Консоль брокера"));
  consoleLink.href = `/sandboxes/${encodeURIComponent(broker)}/ui/`;
  consoleLink.target = "_blank";
  consoleLink.rel = "noopener";
  consoleLink.title = gettext("Веб-консоль брокера {name} в новой вкладке", { name: brokerName(broker) });
  card.append(head, stage, progress, error, consoleLink);
  cardList.append(card);

  start.addEventListener("click", () => act(broker, "sandbox.ensure"));
  stop.addEventListener("click", () => act(broker, "sandbox.stop"));
  extend.addEventListener("click", () => act(broker, "sandbox.extend"));
  // Destructive: the reset icon arms a confirm button that disarms itself after 4 s.
  let armed = 0;
  const disarm = () => {
    clearTimeout(armed);
    armed = 0;
    card.classList.remove("is-confirming");
    renderSandboxes();
  };
  reset.addEventListener("click", () => {
    card.classList.add("is-confirming");
    armed = setTimeout(disarm, 4000);
    renderSandboxes();
    confirm.focus();
  });
  confirm.addEventListener("click", () => {
    disarm();
    act(broker, "sandbox.reset");
  });
  const parts = { card, stateText, start, stop, reset, confirm, stage, progress, bar, error, idle, idleText, extend };
  cards.set(broker, parts);
  return parts;
}

function act(broker, type) {
  if (!live.send({ type, broker })) {
    showAlert(gettext("Нет связи с сервером. Дождитесь, пока индикатор станет зелёным, и повторите."));
    return;
  }
  pendingAction.set(broker, type);
  renderSandboxes();
  // The answer is a sandbox.state frame; should none come, the buttons come back anyway.
  setTimeout(() => {
    if (pendingAction.get(broker) !== type) return;
    pendingAction.delete(broker);
    renderSandboxes();
  }, ACTION_TIMEOUT_MS);
}

function renderSandboxes() {
  if (!sandboxBox || !live.enabled) return;
  const brokers = [...new Set([...live.chapterBrokers(), ...live.sandboxes().map((s) => s.broker)])];
  let anyAlive = false;
  for (const broker of brokers) {
    const sandbox = live.sandbox(broker);
    const p = sandboxCard(broker);
    const state = sandbox?.state || "none";
    const busy = pendingAction.has(broker);
    if (state !== "none" && state !== "stopped") anyAlive = true;
    p.card.dataset.state = state;
    p.stateText.textContent = stateLabel(state);
    const starting = state === "requested" || state === "provisioning";
    const confirming = p.card.classList.contains("is-confirming");
    p.start.hidden = !(state === "none" || state === "stopped" || state === "failed");
    p.stop.hidden = !(starting || state === "ready") || confirming;
    p.reset.hidden = !(state === "ready" || state === "failed") || confirming;
    p.confirm.hidden = !confirming;
    for (const b of [p.start, p.stop, p.reset, p.confirm, p.extend]) b.disabled = busy || live.status !== "open";

    p.stage.hidden = !starting;
    p.stage.textContent = starting ? stageLabel(sandbox) : "";
    p.progress.hidden = !starting;
    const progress = num(sandbox?.progress);
    p.progress.classList.toggle("is-indeterminate", progress == null);
    if (progress != null) {
      const pct = Math.round(Math.min(1, Math.max(0, progress)) * 100);
      p.bar.style.width = `${Math.max(4, pct)}%`;
      p.progress.setAttribute("aria-valuenow", String(pct));
    } else {
      p.bar.style.width = "";
      p.progress.removeAttribute("aria-valuenow");
    }
    p.error.hidden = !(state === "failed" && sandbox?.error);
    p.error.textContent = state === "failed" ? sandbox?.error || "" : "";
    p.expires = state === "ready" && sandbox?.expires_at ? Date.parse(sandbox.expires_at) : NaN;
    p.idle.hidden = Number.isNaN(p.expires);
  }
  sandboxBox.classList.toggle("is-offline", live.status !== "open");
  startAll.hidden = anyAlive || brokers.length < 2;
  startAll.disabled = live.status !== "open";
  if (sandboxText) {
    sandboxText.hidden = anyAlive;
    sandboxText.textContent = gettext("Брокер запустится сам, когда вы выполните первую ячейку.");
  }
  tickIdle();
}

function tickIdle() {
  const now = Date.now();
  for (const p of cards.values()) {
    if (p.idle.hidden) continue;
    const left = p.expires - now;
    p.idleText.textContent = left > 0 ? formatClock(left) : "0:00";
    p.idle.title = left > 0 ? gettext("остановится через {t}", { t: formatClock(left) }) + ". " + gettext("Песочница останавливается, если ею долго не пользоваться; код и прогресс сохраняются") : gettext("сейчас остановится");
    p.idle.classList.toggle("is-soon", left < 5 * 60 * 1000);
  }
}

let alertTimer = 0;
function showAlert(message) {
  alertBox.hidden = false;
  const close = button("live-alert-close", "×", gettext("Закрыть"));
  close.setAttribute("aria-label", gettext("Закрыть"));
  close.addEventListener("click", () => (alertBox.hidden = true));
  alertBox.replaceChildren(el("span", "live-alert-text", message), close);
  clearTimeout(alertTimer);
  alertTimer = setTimeout(() => (alertBox.hidden = true), 12000);
  // On a phone the panel may be folded away: its handle shows that something went wrong.
  if (!aside.classList.contains("is-open")) aside.querySelector(".sheet-handle")?.classList.add("has-alert");
}

if (sandboxBox && live.enabled) {
  sandboxText?.after(alertBox, startAll, cardList);
  if (!sandboxText) sandboxBox.append(alertBox, startAll, cardList);
  startAll.addEventListener("click", () => {
    live.ensure(live.chapterBrokers());
    renderSandboxes();
  });
  live.on("hello", () => {
    pendingAction.clear();
    renderSandboxes();
  });
  live.on("sandbox.state", (frame) => {
    pendingAction.delete(frame.sandbox?.broker);
    renderSandboxes();
  });
  live.on("error", (frame) => {
    pendingAction.clear();
    showAlert(frame.message || gettext("Ошибка"));
    renderSandboxes();
  });
  live.onStatus(() => renderSandboxes());
  setInterval(tickIdle, 1000);
  renderSandboxes();
}
