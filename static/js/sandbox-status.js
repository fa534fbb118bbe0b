// The sandbox block of the live panel: one row per broker the chapter uses, with its state,
// provisioning stage and progress, idle countdown, and Start / Stop / Reset / Extend; when the
// platform is full, the learner's place in the admission queue and an estimate (sandbox.queue);
// under it, whether the next start restores the data a stop kept (with a button to discard it).
import { live, stageLabel } from "./live.js";
import { gettext, pgettext, brokerName, stateLabel, formatClock, formatDate } from "./i18n.js";
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
const queue = new Map(); // broker -> {place, estimate_s, basis}: waiting for room (sandboxes/services/admission.py)
const ACTIVE = new Set(["requested", "provisioning", "ready", "stopping"]);

const QUEUE_BASIS = {
  releases: () => gettext("Оценка по тому, как часто освобождались места за последние 15 минут."),
  idle: () => gettext("Оценка по сроку простоя запущенных песочниц: неиспользуемая песочница останавливается сама."),
  timeout: () => gettext("Оценка по времени простоя, после которого песочница останавливается сама."),
};

function queueText(place) {
  const minutes = Math.max(1, Math.round((num(place.estimate_s) || 0) / 60));
  return gettext("Свободных мест нет: вы {place}-й в очереди, ждать около {minutes} мин. Песочница запустится сама.", {
    place: place.place,
    minutes,
  });
}

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
  // The broker's own web console (RabbitMQ's management UI, ActiveMQ's web console, NATS' monitoring), proxied for this learner only.
  const consoleLink = el("a", "sb-console", gettext("Консоль брокера"));
  consoleLink.href = `/sandboxes/${encodeURIComponent(broker)}/ui/`;
  consoleLink.target = "_blank";
  consoleLink.rel = "noopener";
  consoleLink.title = gettext("Веб-консоль брокера {name} в новой вкладке", { name: brokerName(broker) });
  const kept = el("div", "sb-kept");
  const keptText = el("span", "sb-kept-text");
  const discard = button("sb-discard link", gettext("Удалить"), gettext("Удалить сохранённые данные: следующий запуск даст новый брокер"));
  const discardConfirm = button("sb-btn sb-confirm sb-discard-confirm", gettext("Точно удалить?"), gettext("Удалить сохранённые данные: следующий запуск даст новый брокер"));
  discardConfirm.hidden = true;
  kept.append(keptText, discard, discardConfirm);
  card.append(head, stage, progress, error, kept, consoleLink);
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
  // Discarding kept data is destructive too: the same arm-and-confirm, on its own line.
  let discardArmed = 0;
  const discardDisarm = () => {
    clearTimeout(discardArmed);
    discardArmed = 0;
    kept.classList.remove("is-confirming");
    renderSandboxes();
  };
  discard.addEventListener("click", () => {
    kept.classList.add("is-confirming");
    discardArmed = setTimeout(discardDisarm, 4000);
    renderSandboxes();
    discardConfirm.focus();
  });
  discardConfirm.addEventListener("click", () => {
    discardDisarm();
    parts.discarded = true; // from now on the card says the next start is a fresh broker
    act(broker, "sandbox.discard");
  });
  const parts = { card, stateText, start, stop, reset, confirm, stage, progress, bar, error, idle, idleText, extend, kept, keptText, discard, discardConfirm, discarded: false };
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
    const place = ACTIVE.has(state) ? null : queue.get(broker);
    if ((state !== "none" && state !== "stopped") || place) anyAlive = true;
    p.card.dataset.state = place ? "queued" : state;
    p.stateText.textContent = place ? gettext("ждёт места") : stateLabel(state);
    const starting = state === "requested" || state === "provisioning";
    const confirming = p.card.classList.contains("is-confirming");
    p.start.hidden = Boolean(place) || !(state === "none" || state === "stopped" || state === "failed");
    p.stop.hidden = !(starting || state === "ready" || place) || confirming;
    const stopLabel = place ? gettext("Уйти из очереди") : gettext("Остановить");
    p.stop.title = stopLabel;
    p.stop.setAttribute("aria-label", stopLabel);
    p.reset.hidden = !(state === "ready" || state === "failed") || confirming;
    p.confirm.hidden = !confirming;
    for (const b of [p.start, p.stop, p.reset, p.confirm, p.extend]) b.disabled = busy || live.status !== "open";

    p.stage.hidden = !(starting || place);
    p.stage.textContent = place ? queueText(place) : starting ? stageLabel(sandbox) : "";
    p.stage.title = place ? (QUEUE_BASIS[place.basis] || QUEUE_BASIS.timeout)() : "";
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
    if (place) p.error.hidden = true;
    else p.error.hidden = !(state === "failed" && sandbox?.error);
    p.error.textContent = state === "failed" ? sandbox?.error || "" : "";
    renderKept(p, broker, state, busy);
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

/** What the next start gives (the kept data, from when; a fresh broker only just after the learner
 *  discarded what was kept: every card of a broker never started would say so otherwise), or what
 *  this one runs on. */
function renderKept(p, broker, state, busy) {
  const data = live.kept(broker);
  const running = state === "requested" || state === "provisioning" || state === "ready";
  const waiting = !running && state !== "stopping";
  const date = data ? formatDate(data.saved_at) : "";
  p.kept.dataset.kept = data ? (data.in_use ? "restored" : "kept") : "fresh";
  if (running) {
    p.discarded = false;
    p.keptText.textContent = data?.in_use ? gettext("восстановлено: данные от {date}", { date }) : "";
  } else if (waiting && data && !data.in_use) {
    p.keptText.textContent = gettext("будет восстановлено: данные от {date}", { date });
  } else if (waiting && p.discarded) {
    p.keptText.textContent = gettext("при запуске: новый брокер, без данных");
  } else {
    p.keptText.textContent = "";
  }
  p.kept.hidden = !p.keptText.textContent;
  const discardable = waiting && Boolean(data) && !data.in_use;
  const confirming = p.kept.classList.contains("is-confirming") && discardable;
  p.discard.hidden = !discardable || confirming;
  p.discardConfirm.hidden = !confirming;
  for (const b of [p.discard, p.discardConfirm]) b.disabled = busy || live.status !== "open";
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
  live.on("hello", (frame) => {
    pendingAction.clear();
    queue.clear();
    for (const place of frame.queue || []) queue.set(place.broker, place);
    renderSandboxes();
  });
  live.on("sandbox.state", (frame) => {
    pendingAction.delete(frame.sandbox?.broker);
    // Admitted: the queue's place gives way to the provisioning progress.
    if (ACTIVE.has(frame.sandbox?.state)) queue.delete(frame.sandbox?.broker);
    renderSandboxes();
  });
  live.on("sandbox.queue", (frame) => {
    pendingAction.delete(frame.broker);
    if (frame.place == null) queue.delete(frame.broker);
    else queue.set(frame.broker, frame);
    if (frame.error) showAlert(frame.error);
    renderSandboxes();
  });
  live.on("sandbox.kept", (frame) => {
    for (const [broker, type] of pendingAction) if (type === "sandbox.discard") pendingAction.delete(broker);
    if (frame.message) showAlert(frame.message);
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
