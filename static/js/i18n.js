// The live modules' UI strings come from Django's JavaScript catalogue (/jsi18n/, loaded by
// base.html before any module): msgids are the Russian text, translations live in
// locale/<lang>/LC_MESSAGES/djangojs.po. Also number, size and time formatting in the page's language.
export const LANG = (document.documentElement.lang || "ru").toLowerCase().startsWith("en") ? "en" : "ru";

// Without the catalogue (it failed to load) the page still works, in Russian.
const catalogue = globalThis.django || {
  gettext: (msgid) => msgid,
  ngettext: (singular, plural, n) => (n === 1 ? singular : plural),
  pgettext: (context, msgid) => msgid,
};
const numbers = new Intl.NumberFormat(LANG);
const decimals = new Intl.NumberFormat(LANG, { maximumFractionDigits: 1 });

/** ``text`` with its {placeholders} filled from ``vars`` (numbers formatted for the language). */
function fill(text, vars) {
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in vars)) return whole;
    const v = vars[name];
    return typeof v === "number" ? numbers.format(v) : String(v);
  });
}

/** The translation of ``msgid`` (Russian source text), placeholders filled. */
export function gettext(msgid, vars = {}) {
  return fill(catalogue.gettext(msgid), vars);
}

/** The plural form for ``n`` (Russian has three, and the catalogue knows which), placeholders filled. */
export function ngettext(singular, plural, n, vars = {}) {
  return fill(catalogue.ngettext(singular, plural, Number(n) || 0), { n, ...vars });
}

/** Like gettext, for a Russian text that reads differently in another language depending on ``context``. */
export function pgettext(context, msgid, vars = {}) {
  return fill(catalogue.pgettext(context, msgid), vars);
}

// Labels of values the server sends (a gettext call needs a literal string to be found by makemessages).
const SANDBOX_STATES = {
  requested: gettext("в очереди"),
  provisioning: gettext("запускается"),
  ready: gettext("готово"),
  stopping: gettext("останавливается"),
  stopped: gettext("остановлена"),
  failed: pgettext("sandbox state", "ошибка"),
};
const SANDBOX_STAGES = {
  preparing: pgettext("sandbox stage", "подготовка"),
  starting: gettext("запуск брокера"),
  waiting: gettext("ожидание брокера"),
  ready: gettext("готово"),
};

/** The label of a sandbox stage, or undefined for a stage this page does not know. */
export function stageName(stage) {
  return SANDBOX_STAGES[stage];
}

/** A sandbox state in words ("none" when there is no sandbox); unknown states as they come. */
export function stateLabel(state) {
  if (state === "none") return gettext("не запущена");
  return SANDBOX_STATES[state] ?? String(state);
}

// The broker kinds and their labels come from the server's registry (base.html's "broker-kinds"
// JSON), so a broker added there is named here without an edit.
function readBrokers() {
  try {
    const found = JSON.parse(document.getElementById("broker-kinds")?.textContent || "[]");
    return Array.isArray(found) ? found.filter((b) => b && typeof b.name === "string") : [];
  } catch {
    return [];
  }
}
const BROKERS = readBrokers();
const BROKER_NAMES = new Map(BROKERS.map((b) => [b.name, b]));

/** Every broker kind the server knows, in its order: [{name, label, short}]. */
export function brokerKinds() {
  return BROKERS.map((b) => ({ ...b }));
}

/** A broker's short product name for tabs and badges, in the page's language; unknown names as they come. */
export function brokerName(broker) {
  const b = BROKER_NAMES.get(broker);
  return (b && (b.short || b.label)) || broker;
}

/** A broker's full product name ("Apache Kafka"); unknown names as they come. */
export function brokerLabel(broker) {
  return BROKER_NAMES.get(broker)?.label || broker;
}

export function formatNumber(n) {
  return numbers.format(n);
}

export function formatBytes(n) {
  if (n < 1024) return `${numbers.format(n)} ${gettext("Б")}`;
  if (n < 1024 * 1024) return `${decimals.format(n / 1024)} ${gettext("КБ")}`;
  return `${decimals.format(n / (1024 * 1024))} ${gettext("МБ")}`;
}

/** Elapsed time: "850 ms", "4.2 s", "2 min 5 s". */
export function formatDuration(ms) {
  if (ms < 1000) return gettext("{n} мс", { n: Math.round(ms) });
  if (ms < 60_000) return gettext("{n} с", { n: ms < 10_000 ? decimals.format(ms / 1000) : Math.floor(ms / 1000) });
  const s = Math.floor(ms / 1000);
  return gettext("{m} мин {s} с", { m: Math.floor(s / 60), s: s % 60 });
}

/** A countdown as m:ss (or h:mm:ss). */
export function formatClock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const dates = new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeStyle: "short" });

/** A moment (ISO text) as the reader's date and time, e.g. "1 дек. 2026 г., 07:12". */
export function formatDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : dates.format(d);
}

/** Wall-clock time with milliseconds, for message rows. */
export function formatTime(ms) {
  const d = new Date(ms);
  const pad = (v, n = 2) => String(v).padStart(n, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
