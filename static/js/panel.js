// The live panel: the message stream (newest first, filtered, batched into animation frames
// so a flood never freezes the page), and on phones the bottom sheet that holds the panel.
// It shows the brokers this chapter uses unless the learner asks for all of them; filters,
// pause and "cleared" are kept per chapter across a reload (keep.js).
// Its other blocks, sandbox status and topology, are modules of their own, loaded from here.
import { live } from "./live.js";
import { gettext, ngettext, brokerName, stateLabel, formatNumber, formatBytes, formatTime } from "./i18n.js";
import { el, button, icon } from "./dom.js";
import { keep, recall } from "./keep.js";
import "./sandbox-status.js";
import "./topology.js";

const aside = document.querySelector("[data-live-panel]");
const MAX_ROWS = 500; // rows kept in the DOM
const STORE_SIZE = 2000; // events kept in memory, to re-filter
const FRAME_BUDGET_MS = 8; // time spent building rows per commit
const ROWS_PER_COMMIT = 150;
const ROWS_PER_COMMIT_BUSY = 40; // a flood shows a sample, and counts the rest as not shown
const BUSY_RATE = 300; // events per second above which the list is redrawn ~8 times a second
const BUSY_INTERVAL_MS = 120;
const FOLD_LINES = 5;
const FOLD_CHARS = 420;
const HIGHLIGHT_JSON_MAX = 3000;

// Module state, declared before any function that reads it runs.
let list; // <ol> of rows, newest first
let emptyNote;
let countNode;
let droppedNode;
let pausedNode;
let otherNode;
let pauseButton;
let scopeSelect;
let destSelect;
let dirSelect;
let searchInput;

let seq = 0;
let store = []; // recent events (all), oldest first, for re-filtering
let pending = []; // matching events waiting for the next frame, oldest first
let pausedQueue = [];
let paused = false;
let pausedCount = 0;
// Marks are per sandbox: the newest seen_ms (the agent's clock) at the moment of a pause or a
// clear. They outlive a reload, when the agent sends its recent events again.
let pausedMarks = {}; // events up to these were on screen when the learner paused
let clearedMarks = {}; // events up to these were cleared
const newestSeen = {}; // sandbox id -> newest seen_ms received
const counts = new Map(); // broker -> events received since the last clear
let serverDropped = 0;
let panelDropped = 0;
let scheduled = false;
let lastCommit = 0;
let rateWindowStart = 0;
let rateCount = 0;
let busy = false;
let destinationsDirty = false;
const destinations = new Map(); // filter value -> {broker, label}
// scope: "chapter" (its brokers) or "all"; a page may start with all (the editor, whose drafts use any broker).
const filter = { dest: "", dir: "", text: "", scope: aside?.dataset.panelScope === "all" ? "all" : "chapter" };
let sheetHandle = null;
let sheetSummary = null;
let sheetCount = null;
let seenTotal = 0;

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

// ==========================================================================================
// Messages
// ==========================================================================================

const messagesBox = aside?.querySelector("[data-messages]");

// How each broker's destination reads; whatever detail is not used here becomes a chip.
const HIDDEN_DETAIL = new Set(["not_shown", "up_to_seq", "message_id", "vhost", "persistent"]);
const DESCRIBE = {
  kafka(ev) {
    const chips = [];
    const pos = [];
    if (ev.partition != null) pos.push([`p${ev.partition}`, gettext("партиция")]);
    if (ev.offset != null) pos.push([`#${ev.offset}`, gettext("смещение")]);
    if (ev.detail.group) chips.push([`${gettext("группа")} ${ev.detail.group}`, gettext("группа"), "group"]);
    return { kind: gettext("топик"), main: ev.destination, pos, chips, used: ["group"] };
  },
  rabbitmq(ev) {
    const chips = [];
    const d = ev.detail;
    const used = ["routing_key", "exchange", "routed_queues", "redelivered"];
    if (ev.direction === "produced") {
      if (d.routing_key) chips.push([`rk ${d.routing_key}`, gettext("ключ маршрутизации")]);
      if (d.routed_queues) chips.push([`${gettext("→ очереди")} ${d.routed_queues}`, gettext("очередь")]);
      return { kind: gettext("обменник"), main: ev.destination, chips, used };
    }
    if (d.exchange) chips.push([`${gettext("обменник")} ${d.exchange}`, gettext("обменник")]);
    if (d.routing_key) chips.push([`rk ${d.routing_key}`, gettext("ключ маршрутизации")]);
    if (d.redelivered === "True" || d.redelivered === "true") chips.push([gettext("повторно"), "", "warn"]);
    return { kind: gettext("очередь"), main: ev.destination, chips, used };
  },
  activemq(ev) {
    const m = /^\/(queue|topic)\/(.*)$/.exec(ev.destination);
    const chips = [];
    if (ev.detail.inferred === "true") chips.push([gettext("по счётчикам"), gettext("Получение вычислено по счётчикам топика (ActiveMQ не сообщает о нём напрямую)"), "muted"]);
    if (ev.detail.redelivered) chips.push([`${gettext("повторно")} ×${ev.detail.redelivered}`, "", "warn"]);
    return {
      kind: m ? m[1] === "queue" ? gettext("очередь") : gettext("топик") : "",
      main: m ? m[2] : ev.destination,
      chips,
      used: ["inferred", "redelivered"],
    };
  },
  // The three-broker cluster: Kafka's reading, and the node (broker id) the record came from.
  "kafka-cluster"(ev) {
    const base = DESCRIBE.kafka(ev);
    if (ev.detail.node) base.chips.unshift([origin(ev), gettext("Узел кластера, с которого пришла запись (лидер партиции)"), "node"]);
    base.used.push("node");
    return base;
  },
  nats(ev) {
    const chips = [];
    const d = ev.detail;
    const pos = ev.offset != null ? [[`${gettext("seq")} ${ev.offset}`, gettext("seq")]] : [];
    if (d.stream) chips.push([`${gettext("поток")} ${d.stream}`, gettext("поток")]);
    if (d.consumer) chips.push([`${gettext("потребитель")} ${d.consumer}`, gettext("потребитель")]);
    if (d.reply) chips.push([`${gettext("ответ на")} ${d.reply}`, gettext("ответ на"), "muted"]);
    return { kind: gettext("subject"), main: ev.destination, pos, chips, used: ["stream", "consumer", "reply"] };
  },
};
/** "Kafka ×3 · брокер 2": the kind and the node of a cluster's record. */
function origin(ev) {
  return `${brokerName(ev.broker)} · ${gettext("брокер {id}", { id: ev.detail.node })}`;
}

function describe(ev) {
  const fn = DESCRIBE[ev.broker];
  const base = fn ? fn(ev) : { kind: "", main: ev.destination, chips: [], used: [] };
  base.pos = base.pos || [];
  if (!fn && ev.partition != null) base.pos.push([`p${ev.partition}`, gettext("партиция")]);
  if (!fn && ev.offset != null) base.pos.push([`#${ev.offset}`, gettext("смещение")]);
  for (const [k, v] of Object.entries(ev.detail)) {
    if (!base.used.includes(k) && !HIDDEN_DETAIL.has(k) && v !== "" && v != null) base.chips.push([`${k}=${v}`, k, "muted"]);
  }
  return base;
}

function normalize(raw, broker) {
  const ev = raw && typeof raw === "object" ? raw : {};
  ev.broker = ev.broker || broker || "";
  ev.direction = ev.direction === "consumed" ? "consumed" : "produced";
  ev.destination = String(ev.destination ?? "");
  ev.detail = ev.detail && typeof ev.detail === "object" ? ev.detail : {};
  ev.headers = ev.headers && typeof ev.headers === "object" ? ev.headers : {};
  ev.value = ev.value && typeof ev.value === "object" ? ev.value : { encoding: "empty", text: "" };
  ev.seen_ms = num(ev.seen_ms) ?? Date.now();
  seq += 1;
  ev._seq = seq;
  ev._skipped = Number(ev.detail.not_shown) > 0 ? Number(ev.detail.not_shown) : 0;
  return ev;
}

function destKey(ev) {
  return `${ev.broker}\u0000${ev.destination}`;
}

function haystack(ev) {
  if (ev._hay == null) {
    const parts = [ev.destination, ev.key ?? "", ev.value.text ?? ""];
    for (const [k, v] of Object.entries(ev.headers)) parts.push(k, v);
    for (const [k, v] of Object.entries(ev.detail)) parts.push(k, v);
    ev._hay = parts.join("\n").toLowerCase();
  }
  return ev._hay;
}

function inScope(broker) {
  return filter.scope === "all" || live.chapterBrokers().includes(broker);
}

/** Events in the panel's scope since the last clear. */
function scopedTotal() {
  let n = 0;
  for (const [broker, count] of counts) if (inScope(broker)) n += count;
  return n;
}

function otherTotal() {
  let n = 0;
  for (const [broker, count] of counts) if (!inScope(broker)) n += count;
  return n;
}

function before(marks, ev) {
  const mark = marks[ev._sandbox];
  return mark != null && ev.seen_ms <= mark;
}

function marksNow() {
  return { ...newestSeen };
}

function matches(ev) {
  if (!inScope(ev.broker)) return false;
  if (filter.dir && ev.direction !== filter.dir) return false;
  if (filter.dest && destKey(ev) !== filter.dest) return false;
  if (filter.text && !haystack(ev).includes(filter.text)) return false;
  return true;
}

function receive(frame) {
  const broker = frame.broker || live.brokerOf(frame.sandbox) || "";
  if (inScope(broker)) serverDropped += Math.max(0, Number(frame.dropped) || 0);
  const events = Array.isArray(frame.events) ? frame.events : [];
  measureRate(events.length);
  for (const raw of events) {
    const ev = normalize(raw, broker);
    ev._sandbox = String(frame.sandbox ?? ev.broker);
    if (!(newestSeen[ev._sandbox] >= ev.seen_ms)) newestSeen[ev._sandbox] = ev.seen_ms;
    // Cleared before (perhaps before a reload, and sent again by the agent now): not shown.
    if (before(clearedMarks, ev)) continue;
    counts.set(ev.broker, (counts.get(ev.broker) || 0) + 1);
    if (ev._skipped && inScope(ev.broker)) serverDropped += ev._skipped;
    store.push(ev);
    const key = destKey(ev);
    if (!destinations.has(key)) {
      destinations.set(key, { broker: ev.broker, label: ev.destination });
      destinationsDirty = true;
    }
    if (!matches(ev)) continue;
    if (paused && !before(pausedMarks, ev)) {
      pausedCount += 1;
      pausedQueue.push(ev);
    } else {
      pending.push(ev);
    }
  }
  if (store.length > STORE_SIZE * 1.5) store = store.slice(-STORE_SIZE);
  // What would scroll out of the kept rows before it was ever drawn is counted, not drawn.
  if (pending.length > MAX_ROWS) {
    panelDropped += pending.length - MAX_ROWS;
    pending = pending.slice(-MAX_ROWS);
  }
  if (pausedQueue.length > MAX_ROWS) {
    panelDropped += pausedQueue.length - MAX_ROWS;
    pausedQueue = pausedQueue.slice(-MAX_ROWS);
  }
  schedule();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(flush);
}

/** Note ``n`` arrivals; above BUSY_RATE the list is redrawn less often and without animation. */
function measureRate(n) {
  const now = performance.now();
  rateCount += n;
  const elapsed = now - rateWindowStart;
  // A single big batch is a flood already; otherwise judge by the last half second.
  if (n > BUSY_RATE / 4 && !busy) setBusy(true);
  if (elapsed > 500) {
    setBusy((rateCount * 1000) / elapsed > BUSY_RATE);
    rateWindowStart = now;
    rateCount = 0;
  }
}

function setBusy(value) {
  if (busy === value) return;
  busy = value;
  list?.classList.toggle("is-busy", busy);
}

function flush(now) {
  scheduled = false;
  // Under a flood, redraw a few times a second: nobody reads faster, and layout is the cost.
  if (busy && now - lastCommit < BUSY_INTERVAL_MS) {
    schedule();
    return;
  }
  lastCommit = now;
  const started = performance.now();
  const rows = [];
  let i = 0;
  const limit = busy ? ROWS_PER_COMMIT_BUSY : ROWS_PER_COMMIT;
  if (pending.length > limit && busy) {
    // Only the newest rows of a flood are ever on screen; older ones are counted, not drawn.
    panelDropped += pending.length - limit;
    pending = pending.slice(-limit);
  }
  while (i < pending.length && i < limit) {
    rows.push(buildRow(pending[i]));
    i += 1;
    if ((i & 7) === 0 && performance.now() - started > FRAME_BUDGET_MS) break;
  }
  if (i) pending = pending.slice(i);
  if (rows.length) {
    const fragment = document.createDocumentFragment();
    for (let k = rows.length - 1; k >= 0; k -= 1) fragment.append(rows[k]);
    list.prepend(fragment);
    let extra = list.childElementCount - MAX_ROWS;
    while (extra-- > 0) list.lastElementChild.remove();
  }
  if (destinationsDirty) renderDestinations();
  renderCounters();
  if (pending.length) schedule();
}

function highlightJson(pre, text) {
  const re = /("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) pre.append(text.slice(last, m.index));
    if (m[1]) {
      pre.append(el("span", m[2] ? "j-key" : "j-str", m[1]));
      if (m[2]) pre.append(m[2]);
    } else if (m[3]) pre.append(el("span", "j-lit", m[3]));
    else pre.append(el("span", "j-num", m[4]));
    last = re.lastIndex;
  }
  if (last < text.length) pre.append(text.slice(last));
}

function prettyJson(text) {
  if (text.length > HIGHLIGHT_JSON_MAX || text.includes("\n")) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch (e) {
    return text;
  }
}

function valueNode(value) {
  const text = value.encoding === "json" ? prettyJson(value.text ?? "") : value.text ?? "";
  if (value.encoding === "empty" || text === "") return el("div", "msg-value-empty", gettext("(пустое тело)"));
  const box = el("div", "msg-value-box");
  const pre = el("pre", `msg-value enc-${value.encoding}`);
  if (value.encoding === "json" && text.length <= HIGHLIGHT_JSON_MAX && !busy) highlightJson(pre, text);
  else pre.textContent = text;
  box.append(pre);
  let lines = 1;
  for (let i = text.indexOf("\n"); i !== -1 && lines <= FOLD_LINES; i = text.indexOf("\n", i + 1)) lines += 1;
  const notes = [];
  if (value.encoding === "hex") notes.push(el("span", "msg-note", gettext("двоичные данные, hex")));
  if (value.truncated) notes.push(el("span", "msg-note", gettext("показаны первые 4 КБ")));
  if (lines > FOLD_LINES || text.length > FOLD_CHARS) {
    pre.classList.add("is-folded");
    notes.unshift(button("msg-more link", gettext("показать всё")));
  }
  if (notes.length) {
    const foot = el("div", "msg-value-foot");
    foot.append(...notes);
    box.append(foot);
  }
  return box;
}

function chip(text, title, kind) {
  const node = el("span", `chip${kind ? ` chip-${kind}` : ""}`, text);
  if (title) node.title = title;
  return node;
}

function buildRow(ev) {
  const row = el("li", `msg msg-${ev.direction}`);
  if (ev._skipped) {
    row.classList.add("msg-skipped");
    row.append(el("span", "msg-dir", ev.direction === "produced" ? "↑" : "↓"), el("span", "msg-skip-text", `${ngettext("… и ещё {n} сообщение без подробностей", "… и ещё {n} сообщений без подробностей", ev._skipped, { n: ev._skipped })} · ${ev.destination}`));
    return row;
  }
  const d = describe(ev);
  const head = el("div", "msg-head");
  const dir = el("span", "msg-dir", ev.direction === "produced" ? "↑" : "↓");
  dir.title = ev.direction === "produced" ? gettext("отправлено") : gettext("получено");
  const time = el("time", "msg-time", formatTime(ev.seen_ms));
  if (num(ev.timestamp_ms) != null) time.title = new Date(ev.timestamp_ms).toISOString();
  const dest = el("span", "msg-dest");
  if (d.kind) dest.append(el("span", "msg-kind", d.kind));
  const main = el("span", "msg-main", d.main);
  main.title = d.main;
  dest.append(main);
  for (const [text, title] of d.pos) {
    const p = el("span", "msg-pos", text);
    p.title = title;
    dest.append(p);
  }
  const size = el("span", "msg-size", formatBytes(num(ev.size) ?? 0));
  head.append(dir, time, el("span", `msg-broker broker-dot broker-${ev.broker}`), dest, size);
  row.append(head);
  row.title = ev.detail.node ? origin(ev) : brokerName(ev.broker);

  const meta = el("div", "msg-meta");
  if (ev.key != null && ev.key !== "") meta.append(chip(`${gettext("ключ")} ${ev.key}`, gettext("ключ"), "key"));
  for (const [text, title, kind] of d.chips) meta.append(chip(text, title, kind));
  const headers = Object.entries(ev.headers);
  for (const [k, v] of headers.slice(0, 8)) {
    const value = String(v);
    meta.append(chip(`${k}: ${value.length > 40 ? `${value.slice(0, 40)}…` : value}`, `${gettext("заголовки")}: ${k}: ${value}`, "header"));
  }
  if (headers.length > 8) meta.append(chip(`+${headers.length - 8}`, headers.slice(8).map(([k, v]) => `${k}: ${v}`).join("\n"), "header"));
  if (meta.childNodes.length) row.append(meta);
  row.append(valueNode(ev.value));
  return row;
}

function renderCounters() {
  const total = scopedTotal();
  countNode.textContent = total ? ngettext("{n} сообщение", "{n} сообщений", total, { n: total }) : "";
  const others = otherTotal();
  otherNode.hidden = others === 0;
  if (others) otherNode.textContent = gettext("ещё {n} от других брокеров — показать", { n: others });
  const dropped = serverDropped + panelDropped;
  droppedNode.hidden = dropped === 0;
  if (dropped) {
    droppedNode.textContent = ngettext("{n} сообщение не показано", "{n} сообщений не показано", dropped, { n: dropped });
    droppedNode.title = gettext("Сообщения приходили быстрее, чем их можно показать. Сервер пропустил: {server}, панель: {panel}. В брокере они есть.", { server: formatNumber(serverDropped), panel: formatNumber(panelDropped) });
  }
  pausedNode.hidden = !paused;
  if (paused) pausedNode.textContent = ngettext("пауза · {n} новое", "пауза · {n} новых", pausedCount, { n: pausedCount });
  const empty = list.childElementCount === 0;
  emptyNote.hidden = !empty;
  emptyNote.textContent = total && (filter.dest || filter.dir || filter.text) ? gettext("Ни одно сообщение не подходит под фильтр.") : gettext("Здесь появятся сообщения, которые ваш код отправит и получит.");
  renderSheetSummary();
}

function renderDestinations() {
  destinationsDirty = false;
  const byBroker = new Map();
  for (const [value, d] of destinations) {
    if (!byBroker.has(d.broker)) byBroker.set(d.broker, []);
    byBroker.get(d.broker).push([value, d.label]);
  }
  const options = [new Option(gettext("все адресаты"), "")];
  for (const broker of [...byBroker.keys()]) if (!inScope(broker)) byBroker.delete(broker);
  const [destBroker, destLabel] = filter.dest.split("\u0000");
  if (filter.dest && !destinations.has(filter.dest) && inScope(destBroker)) {
    // Kept from before a reload: offered until its messages come again.
    if (!byBroker.has(destBroker)) byBroker.set(destBroker, []);
    byBroker.get(destBroker).push([filter.dest, destLabel]);
  }
  const grouped = byBroker.size > 1;
  for (const [broker, items] of [...byBroker].sort()) {
    items.sort((a, b) => a[1].localeCompare(b[1]));
    const parent = grouped ? document.createElement("optgroup") : null;
    if (parent) parent.label = brokerName(broker);
    for (const [value, label] of items) {
      const option = new Option(label, value);
      if (parent) parent.append(option);
      else options.push(option);
    }
    if (parent) options.push(parent);
  }
  destSelect.replaceChildren(...options);
  destSelect.value = filter.dest;
  if (destSelect.value !== filter.dest) {
    // Its broker is out of scope now: a filter nobody can see would hide every message.
    filter.dest = "";
    destSelect.value = "";
  }
}

/** Rebuild the rows from memory after the filter changed. */
function refilter() {
  list.replaceChildren();
  renderDestinations(); // first: it drops a destination filter that the scope no longer allows
  const shown = (ev) => !paused || before(pausedMarks, ev);
  pending = store.filter((ev) => shown(ev) && matches(ev)).slice(-MAX_ROWS);
  if (paused) {
    pausedQueue = store.filter((ev) => !shown(ev) && matches(ev)).slice(-MAX_ROWS);
    pausedCount = pausedQueue.length;
  }
  schedule();
  keepState();
}

/** What the learner set up in this chapter's panel, kept for the next visit. */
function keepState() {
  keep("panel", "", { v: 1, filter, paused, pausedMarks, clearedMarks });
}

function setPaused(value, { marks = marksNow() } = {}) {
  paused = value;
  pauseButton.replaceChildren(icon(paused ? "run" : "pause"), paused ? gettext("Продолжить") : gettext("Пауза"));
  pauseButton.setAttribute("aria-pressed", String(paused));
  messagesBox.classList.toggle("is-paused", paused);
  if (paused) {
    pausedMarks = marks;
    pausedCount = 0;
  } else {
    pending = pending.concat(pausedQueue).slice(-MAX_ROWS);
    pausedQueue = [];
    pausedCount = 0;
    pausedMarks = {};
  }
  schedule();
  keepState();
}

function clearMessages() {
  clearedMarks = marksNow();
  store = [];
  pending = [];
  pausedQueue = [];
  pausedCount = 0;
  counts.clear();
  serverDropped = 0;
  panelDropped = 0;
  destinations.clear();
  list.replaceChildren();
  renderDestinations();
  renderCounters();
  keepState();
}

function buildMessages() {
  const head = messagesBox.querySelector("h2");
  const header = el("header", "panel-head");
  countNode = el("span", "msg-count muted");
  if (head) {
    head.replaceWith(header);
    header.append(head, countNode);
  } else messagesBox.prepend(header);
  messagesBox.querySelector("[data-messages-empty]")?.remove();

  const tools = el("div", "msg-tools");
  scopeSelect = el("select", "tool-select msg-scope");
  scopeSelect.setAttribute("aria-label", gettext("Брокеры"));
  const mine = live.chapterBrokers().map(brokerName).join(", ");
  scopeSelect.append(new Option(gettext("брокеры главы: {names}", { names: mine }), "chapter"), new Option(gettext("все брокеры"), "all"));
  scopeSelect.title = gettext("Сообщения каких брокеров показывать: только тех, что нужны этой главе, или всех ваших");
  pauseButton = button("tool-btn msg-pause", "");
  const clear = button("tool-btn msg-clear", null, gettext("Очистить"));
  clear.append(icon("trash"), gettext("Очистить"));
  destSelect = el("select", "tool-select msg-dest-filter");
  destSelect.setAttribute("aria-label", gettext("Адресат"));
  dirSelect = el("select", "tool-select msg-dir-filter");
  dirSelect.setAttribute("aria-label", gettext("Направление"));
  dirSelect.append(new Option(gettext("↑↓ все"), ""), new Option(gettext("↑ отправленные"), "produced"), new Option(gettext("↓ полученные"), "consumed"));
  searchInput = el("input", "tool-search");
  searchInput.type = "search";
  searchInput.placeholder = gettext("Поиск по сообщениям");
  searchInput.setAttribute("aria-label", gettext("Поиск по сообщениям"));
  searchInput.title = gettext("Ищет в адресатах, ключах, заголовках и значениях");
  tools.append(searchInput, pauseButton, clear, scopeSelect, destSelect, dirSelect);

  const status = el("div", "msg-status");
  droppedNode = el("span", "msg-dropped");
  droppedNode.hidden = true;
  pausedNode = el("span", "msg-paused");
  pausedNode.hidden = true;
  otherNode = button("msg-other link");
  otherNode.hidden = true;
  otherNode.title = gettext("Сообщения брокеров, которые эта глава не использует, скрыты");
  status.append(pausedNode, droppedNode, otherNode);

  list = el("ol", "msg-list");
  list.setAttribute("aria-live", "off");
  emptyNote = el("p", "msg-empty muted", gettext("Здесь появятся сообщения, которые ваш код отправит и получит."));
  const scroller = el("div", "msg-scroller");
  scroller.append(emptyNote, list);
  messagesBox.append(tools, status, scroller);

  pauseButton.addEventListener("click", () => setPaused(!paused));
  clear.addEventListener("click", clearMessages);
  const setScope = (value) => {
    filter.scope = value === "all" ? "all" : "chapter";
    scopeSelect.value = filter.scope;
    refilter();
    renderCounters();
  };
  scopeSelect.addEventListener("change", () => setScope(scopeSelect.value));
  otherNode.addEventListener("click", () => setScope("all"));
  destSelect.addEventListener("change", () => {
    filter.dest = destSelect.value;
    refilter();
  });
  dirSelect.addEventListener("change", () => {
    filter.dir = dirSelect.value;
    refilter();
  });
  let searchTimer = 0;
  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      filter.text = searchInput.value.trim().toLowerCase();
      refilter();
    }, 150);
  });
  // One listener for every "show more" in the list.
  list.addEventListener("click", (event) => {
    const more = event.target.closest(".msg-more");
    if (!more) return;
    const pre = more.closest(".msg-value-box").querySelector(".msg-value");
    const folded = pre.classList.toggle("is-folded");
    more.textContent = folded ? gettext("показать всё") : gettext("свернуть");
  });
  restoreState();
  renderDestinations();
  renderCounters();
}

/** The panel as the learner left it in this chapter: scope, filters, pause and what was cleared. */
function restoreState() {
  const kept = recall("panel");
  const ok = kept && kept.v === 1 && typeof kept.filter === "object";
  const text = (value) => (typeof value === "string" ? value : "");
  const marks = (value) => (value && typeof value === "object" ? value : {});
  if (ok) {
    filter.scope = kept.filter.scope === "all" ? "all" : "chapter";
    filter.dest = text(kept.filter.dest);
    filter.dir = ["produced", "consumed"].includes(kept.filter.dir) ? kept.filter.dir : "";
    filter.text = text(kept.filter.text);
    clearedMarks = marks(kept.clearedMarks);
  }
  scopeSelect.value = filter.scope;
  dirSelect.value = filter.dir;
  searchInput.value = filter.text;
  setPaused(Boolean(ok && kept.paused), { marks: ok ? marks(kept.pausedMarks) : {} });
}

if (messagesBox && live.enabled) {
  buildMessages();
  live.on("sandbox.event", receive);
}

// ==========================================================================================
// Phone layout: the panel is a bottom sheet with a handle that summarises it
// ==========================================================================================

function renderSheetSummary() {
  if (!sheetHandle) return;
  const states = live.chapterBrokers().map((b) => live.sandbox(b)?.state || "none");
  const state = states.includes("failed") ? "failed" : states.includes("provisioning") || states.includes("requested") ? "provisioning" : states.includes("ready") ? "ready" : states[0] || "none";
  sheetHandle.dataset.state = state;
  sheetSummary.textContent = `${gettext("Песочница")} · ${stateLabel(state)}`;
  const total = scopedTotal();
  const unseen = aside.classList.contains("is-open") ? 0 : total - seenTotal;
  if (aside.classList.contains("is-open")) seenTotal = total;
  sheetCount.hidden = unseen <= 0;
  sheetCount.textContent = unseen > 999 ? "999+" : String(unseen);
}

if (aside && live.enabled) {
  sheetHandle = button("sheet-handle");
  sheetHandle.setAttribute("aria-expanded", "false");
  sheetHandle.title = gettext("Открыть панель песочницы и сообщений");
  const grip = el("span", "sheet-grip");
  grip.setAttribute("aria-hidden", "true");
  sheetSummary = el("span", "sheet-summary");
  sheetCount = el("span", "sheet-count");
  const dot = el("span", "sheet-dot");
  dot.setAttribute("aria-hidden", "true");
  sheetHandle.append(grip, dot, sheetSummary, sheetCount);
  aside.prepend(sheetHandle);
  sheetHandle.addEventListener("click", () => {
    const open = aside.classList.toggle("is-open");
    sheetHandle.setAttribute("aria-expanded", String(open));
    sheetHandle.title = open ? gettext("Свернуть панель") : gettext("Открыть панель песочницы и сообщений");
    sheetHandle.classList.remove("has-alert");
    renderSheetSummary();
  });
  aside.classList.add("is-live");
  live.on("hello", renderSheetSummary);
  live.on("sandbox.state", renderSheetSummary);
  renderSheetSummary();
}
