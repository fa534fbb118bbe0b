// UI strings of the live modules in Russian and English, chosen by <html lang>, plus number,
// size, time and plural formatting in the same language.
export const LANG = (document.documentElement.lang || "ru").toLowerCase().startsWith("en") ? "en" : "ru";

// A value is a string with {placeholders}, or plural forms keyed by Intl.PluralRules
// categories (one, few, many, other) when the string takes a count {n}.
const STRINGS = {
  ru: {
    // connection
    "conn.open": "на связи",
    "conn.connecting": "подключение…",
    "conn.closed": "нет связи",
    "conn.retryIn": "нет связи · повтор через {s} с",
    "conn.retry": "Повторить",
    "conn.unauthorized": "сессия истекла",
    "conn.login": "Войти снова",
    "conn.lostRun": "Связь с сервером прервалась; результат запуска неизвестен. Запустите ячейку ещё раз.",
    "conn.offline": "Нет связи с сервером. Дождитесь, пока индикатор станет зелёным, и повторите.",
    // cells
    "cell.run": "Запустить",
    "cell.runTitle": "Запустить ячейку (Shift+Enter — и перейти к следующей, Ctrl+Enter — остаться)",
    "cell.interrupt": "Прервать",
    "cell.interrupting": "Прерываю…",
    "cell.reset": "Вернуть исходный код",
    "cell.resetDone": "Исходный код восстановлен (Ctrl+Z — вернуть ваш)",
    "cell.copy": "Копировать код",
    "cell.copied": "Скопировано",
    "cell.running": "выполняется · {t}",
    "cell.waitingSandbox": "ждём песочницу: {stage} · {t}",
    "cell.login": "Войдите, чтобы запускать код",
    "cell.role.setup": "подготовка",
    "cell.role.starter": "заготовка",
    "cell.role.solution": "решение",
    "cell.role.run": "",
    "cell.timeoutLimit": "лимит {s} с",
    "cell.saving": "сохраняю…",
    "cell.saved": "черновик сохранён",
    "cell.saveFailed": "не сохранено",
    "cell.saveRetry": "Черновик не сохранился — нажмите, чтобы повторить",
    "cell.noOutput": "Ячейка ничего не вывела.",
    "cell.browserCut": "… вывод слишком длинный, дальше не показан",
    "cell.editorLabel": "Код ячейки {key}",
    "cell.outputLabel": "Вывод ячейки",
    // exit badges
    "exit.ok": "{status}",
    "exit.fail": "{status}",
    "exit.timeout": "время вышло",
    "exit.interrupted": "прервано",
    "exit.memory": "не хватило памяти",
    "exit.killed": "процесс остановлен",
    "exit.error": "ошибка",
    "exit.lost": "нет связи",
    "exit.duration": "за {t}",
    "exit.truncated": "вывод обрезан",
    "exit.truncatedTitle": "Сервер показал только начало вывода: он был слишком длинным",
    "exit.statusTitle": "Код завершения процесса",
    // exercises
    "check.button": "Проверить",
    "check.title": "Проверить решение упражнения «{title}» на вашем брокере",
    "check.running": "проверяю…",
    "check.pass": "Принято!",
    "check.fail": "Пока не получилось",
    "check.noAnswer": "Сервер не ответил. Попробуйте ещё раз.",
    "check.login": "Войдите, чтобы проверить решение",
    // sandbox
    "sb.title": "Песочница",
    "sb.none": "не запущена",
    "sb.state.requested": "в очереди",
    "sb.state.provisioning": "запускается",
    "sb.state.ready": "готово",
    "sb.state.stopping": "останавливается",
    "sb.state.stopped": "остановлена",
    "sb.state.failed": "ошибка",
    "sb.stage.preparing": "подготовка",
    "sb.stage.starting": "запуск брокера",
    "sb.stage.waiting": "ожидание брокера",
    "sb.stage.ready": "готово",
    "sb.start": "Запустить",
    "sb.startAll": "Запустить песочницу",
    "sb.startHint": "Брокер запустится сам, когда вы выполните первую ячейку.",
    "sb.stop": "Остановить",
    "sb.resetConfirm": "Точно сбросить?",
    "sb.resetTitle": "Перезапустить брокер с чистого листа: все топики, очереди и сообщения удалятся",
    "sb.extend": "Продлить",
    "sb.extendTitle": "Отложить автоматическую остановку",
    "sb.idle": "остановится через {t}",
    "sb.idleSoon": "сейчас остановится",
    "sb.idleTitle": "Песочница останавливается, если ею долго не пользоваться; код и прогресс сохраняются",
    "sb.error": "Ошибка",
    "sb.dismiss": "Закрыть",
    // messages panel
    "msg.empty": "Здесь появятся сообщения, которые ваш код отправит и получит.",
    "msg.emptyFiltered": "Ни одно сообщение не подходит под фильтр.",
    "msg.pause": "Пауза",
    "msg.resume": "Продолжить",
    "msg.pausedCount": { one: "пауза · {n} новое", few: "пауза · {n} новых", many: "пауза · {n} новых", other: "пауза · {n} новых" },
    "msg.clear": "Очистить",
    "msg.allDestinations": "все адресаты",
    "msg.allDirections": "↑↓ все",
    "msg.onlyProduced": "↑ отправленные",
    "msg.onlyConsumed": "↓ полученные",
    "msg.search": "Поиск по сообщениям",
    "msg.searchTitle": "Ищет в адресатах, ключах, заголовках и значениях",
    "msg.destination": "Адресат",
    "msg.direction": "Направление",
    "msg.produced": "отправлено",
    "msg.consumed": "получено",
    "msg.notShown": { one: "{n} сообщение не показано", few: "{n} сообщения не показаны", many: "{n} сообщений не показано", other: "{n} сообщения не показано" },
    "msg.notShownTitle": "Сообщения приходили быстрее, чем их можно показать. Сервер пропустил: {server}, панель: {panel}. В брокере они есть.",
    "msg.count": { one: "{n} сообщение", few: "{n} сообщения", many: "{n} сообщений", other: "{n} сообщения" },
    "msg.showMore": "показать всё",
    "msg.showLess": "свернуть",
    "msg.key": "ключ",
    "msg.headers": "заголовки",
    "msg.emptyValue": "(пустое тело)",
    "msg.previewCut": "показаны первые 4 КБ",
    "msg.binary": "двоичные данные, hex",
    "msg.group": "группа",
    "msg.partition": "партиция",
    "msg.offset": "смещение",
    "msg.exchange": "обменник",
    "msg.routingKey": "ключ маршрутизации",
    "msg.queue": "очередь",
    "msg.topic": "топик",
    "msg.subject": "subject",
    "msg.stream": "поток",
    "msg.consumer": "потребитель",
    "msg.seq": "seq",
    "msg.routedTo": "→ очереди",
    "msg.redelivered": "повторно",
    "msg.inferred": "по счётчикам",
    "msg.inferredTitle": "Получение вычислено по счётчикам топика (ActiveMQ не сообщает о нём напрямую)",
    "msg.reply": "ответ на",
    "msg.skipped": { one: "… и ещё {n} сообщение без подробностей", few: "… и ещё {n} сообщения без подробностей", many: "… и ещё {n} сообщений без подробностей", other: "… и ещё {n} сообщения без подробностей" },
    // topology
    "topo.title": "Брокер изнутри",
    "topo.updated": "обновлено {t}",
    "topo.topics": "Топики",
    "topo.partition": "Партиция",
    "topo.partitions": { one: "{n} партиция", few: "{n} партиции", many: "{n} партиций", other: "{n} партиции" },
    "topo.hwSumTitle": "Сумма high watermark по партициям: сколько записей было записано в топик",
    "topo.hwTitle": "High watermark: смещение, которое получит следующее сообщение",
    "topo.groups": "Группы потребителей",
    "topo.group": "Группа",
    "topo.committedTitle": "Закоммиченное смещение группы",
    "topo.lag": "Лаг",
    "topo.lagTitle": "Сколько сообщений группа ещё не прочитала",
    "topo.noTopics": "Топиков пока нет.",
    "topo.noGroups": "Групп пока нет.",
    "topo.exchanges": "Обменники",
    "topo.queues": "Очереди",
    "topo.noQueues": "Очередей пока нет.",
    "topo.ready": "готово",
    "topo.unacked": "без подтв.",
    "topo.consumers": "потреб.",
    "topo.col.consumers": "Потреб.",
    "topo.col.ready": "Готово",
    "topo.col.unacked": "Без подтв.",
    "topo.messages": "сообщ.",
    "topo.depth": "в очереди",
    "topo.subjects": "Subjects с подписчиками",
    "topo.subscribers": "подписок",
    "topo.noSubjects": "Подписчиков пока нет.",
    "topo.streams": "Потоки JetStream",
    "topo.noStreams": "Потоков пока нет.",
    "topo.consumer": "Потребитель",
    "topo.delivered": "Доставлено",
    "topo.ackFloor": "Подтв. до",
    "topo.pending": "Ждут",
    "topo.enqueued": "Пришло",
    "topo.enqueuedTitle": "Сколько сообщений пришло (enqueueCount)",
    "topo.dequeued": "Ушло",
    "topo.dequeuedTitle": "Сколько сообщений забрали потребители (dequeueCount)",
    "topo.size": "Лежат",
    "topo.sizeTitle": "Сколько сообщений сейчас в очереди",
    "topo.name": "Имя",
    "topo.noDestinations": "Очередей и топиков пока нет.",
    "topo.default": "(по умолчанию)",
    // mobile sheet
    "sheet.open": "Открыть панель песочницы и сообщений",
    "sheet.close": "Свернуть панель",
    // units
    "unit.b": "Б",
    "unit.kb": "КБ",
    "unit.mb": "МБ",
    "unit.s": "{n} с",
    "unit.ms": "{n} мс",
    "unit.min": "{m} мин {s} с",
  },
  en: {
    "conn.open": "connected",
    "conn.connecting": "connecting…",
    "conn.closed": "offline",
    "conn.retryIn": "offline · retrying in {s} s",
    "conn.retry": "Retry",
    "conn.unauthorized": "session expired",
    "conn.login": "Log in again",
    "conn.lostRun": "The connection to the server dropped; the result of this run is unknown. Run the cell again.",
    "conn.offline": "No connection to the server. Wait until the indicator turns green and try again.",
    "cell.run": "Run",
    "cell.runTitle": "Run the cell (Shift+Enter: and go to the next one, Ctrl+Enter: stay here)",
    "cell.interrupt": "Interrupt",
    "cell.interrupting": "Interrupting…",
    "cell.reset": "Reset to original",
    "cell.resetDone": "Original code restored (Ctrl+Z brings yours back)",
    "cell.copy": "Copy code",
    "cell.copied": "Copied",
    "cell.running": "running · {t}",
    "cell.waitingSandbox": "waiting for the sandbox: {stage} · {t}",
    "cell.login": "Log in to run code",
    "cell.role.setup": "setup",
    "cell.role.starter": "starter",
    "cell.role.solution": "solution",
    "cell.role.run": "",
    "cell.timeoutLimit": "limit {s} s",
    "cell.saving": "saving…",
    "cell.saved": "draft saved",
    "cell.saveFailed": "not saved",
    "cell.saveRetry": "The draft was not saved; click to retry",
    "cell.noOutput": "The cell printed nothing.",
    "cell.browserCut": "… output too long, the rest is not shown",
    "cell.editorLabel": "Code of cell {key}",
    "cell.outputLabel": "Cell output",
    "exit.ok": "{status}",
    "exit.fail": "{status}",
    "exit.timeout": "timed out",
    "exit.interrupted": "interrupted",
    "exit.memory": "out of memory",
    "exit.killed": "process killed",
    "exit.error": "error",
    "exit.lost": "connection lost",
    "exit.duration": "in {t}",
    "exit.truncated": "output cut",
    "exit.truncatedTitle": "The server showed only the beginning of the output: it was too long",
    "exit.statusTitle": "Process exit status",
    "check.button": "Check",
    "check.title": "Check your solution of “{title}” against your broker",
    "check.running": "checking…",
    "check.pass": "Passed!",
    "check.fail": "Not yet",
    "check.noAnswer": "The server did not answer. Try again.",
    "check.login": "Log in to check your solution",
    "sb.title": "Sandbox",
    "sb.none": "not started",
    "sb.state.requested": "queued",
    "sb.state.provisioning": "starting",
    "sb.state.ready": "ready",
    "sb.state.stopping": "stopping",
    "sb.state.stopped": "stopped",
    "sb.state.failed": "failed",
    "sb.stage.preparing": "preparing",
    "sb.stage.starting": "starting the broker",
    "sb.stage.waiting": "waiting for the broker",
    "sb.stage.ready": "ready",
    "sb.start": "Start",
    "sb.startAll": "Start sandbox",
    "sb.startHint": "The broker starts by itself when you run the first cell.",
    "sb.stop": "Stop",
    "sb.resetConfirm": "Really reset?",
    "sb.resetTitle": "Restart the broker from scratch: all topics, queues and messages are deleted",
    "sb.extend": "Extend",
    "sb.extendTitle": "Postpone the automatic stop",
    "sb.idle": "stops in {t}",
    "sb.idleSoon": "stopping now",
    "sb.idleTitle": "A sandbox stops when unused for a while; your code and progress are kept",
    "sb.error": "Error",
    "sb.dismiss": "Dismiss",
    "msg.empty": "Messages your code produces and consumes will appear here.",
    "msg.emptyFiltered": "No message matches the filter.",
    "msg.pause": "Pause",
    "msg.resume": "Resume",
    "msg.pausedCount": { one: "paused · {n} new", other: "paused · {n} new" },
    "msg.clear": "Clear",
    "msg.allDestinations": "all destinations",
    "msg.allDirections": "↑↓ all",
    "msg.onlyProduced": "↑ produced",
    "msg.onlyConsumed": "↓ consumed",
    "msg.search": "Search messages",
    "msg.searchTitle": "Searches destinations, keys, headers and values",
    "msg.destination": "Destination",
    "msg.direction": "Direction",
    "msg.produced": "produced",
    "msg.consumed": "consumed",
    "msg.notShown": { one: "{n} message not shown", other: "{n} messages not shown" },
    "msg.notShownTitle": "Messages arrived faster than they can be shown. Skipped by the server: {server}, by the panel: {panel}. The broker still has them.",
    "msg.count": { one: "{n} message", other: "{n} messages" },
    "msg.showMore": "show more",
    "msg.showLess": "show less",
    "msg.key": "key",
    "msg.headers": "headers",
    "msg.emptyValue": "(empty body)",
    "msg.previewCut": "first 4 KB shown",
    "msg.binary": "binary, hex",
    "msg.group": "group",
    "msg.partition": "partition",
    "msg.offset": "offset",
    "msg.exchange": "exchange",
    "msg.routingKey": "routing key",
    "msg.queue": "queue",
    "msg.topic": "topic",
    "msg.subject": "subject",
    "msg.stream": "stream",
    "msg.consumer": "consumer",
    "msg.seq": "seq",
    "msg.routedTo": "→ queues",
    "msg.redelivered": "redelivered",
    "msg.inferred": "inferred",
    "msg.inferredTitle": "Consumption inferred from the topic's counters (ActiveMQ does not report it directly)",
    "msg.reply": "reply to",
    "msg.skipped": { one: "… and {n} more message without details", other: "… and {n} more messages without details" },
    "topo.title": "Inside the broker",
    "topo.updated": "updated {t}",
    "topo.topics": "Topics",
    "topo.partition": "Partition",
    "topo.partitions": { one: "{n} partition", other: "{n} partitions" },
    "topo.hwSumTitle": "Sum of the partitions' high watermarks: how many records the topic has taken",
    "topo.hwTitle": "High watermark: the offset the next message will get",
    "topo.groups": "Consumer groups",
    "topo.group": "Group",
    "topo.committedTitle": "The group's committed offset",
    "topo.lag": "Lag",
    "topo.lagTitle": "How many messages the group has not read yet",
    "topo.noTopics": "No topics yet.",
    "topo.noGroups": "No groups yet.",
    "topo.exchanges": "Exchanges",
    "topo.queues": "Queues",
    "topo.noQueues": "No queues yet.",
    "topo.ready": "ready",
    "topo.unacked": "unacked",
    "topo.consumers": "consumers",
    "topo.col.consumers": "Consumers",
    "topo.col.ready": "Ready",
    "topo.col.unacked": "Unacked",
    "topo.messages": "msgs",
    "topo.depth": "queued",
    "topo.subjects": "Subjects with subscribers",
    "topo.subscribers": "subscriptions",
    "topo.noSubjects": "No subscribers yet.",
    "topo.streams": "JetStream streams",
    "topo.noStreams": "No streams yet.",
    "topo.consumer": "Consumer",
    "topo.delivered": "Delivered",
    "topo.ackFloor": "Acked to",
    "topo.pending": "Pending",
    "topo.enqueued": "In",
    "topo.enqueuedTitle": "Messages enqueued (enqueueCount)",
    "topo.dequeued": "Out",
    "topo.dequeuedTitle": "Messages taken by consumers (dequeueCount)",
    "topo.size": "Stored",
    "topo.sizeTitle": "Messages in the queue now",
    "topo.name": "Name",
    "topo.noDestinations": "No queues or topics yet.",
    "topo.default": "(default)",
    "sheet.open": "Open the sandbox and messages panel",
    "sheet.close": "Collapse the panel",
    "unit.b": "B",
    "unit.kb": "KB",
    "unit.mb": "MB",
    "unit.s": "{n} s",
    "unit.ms": "{n} ms",
    "unit.min": "{m} min {s} s",
  },
};

const plurals = new Intl.PluralRules(LANG);
const numbers = new Intl.NumberFormat(LANG);
const decimals = new Intl.NumberFormat(LANG, { maximumFractionDigits: 1 });

/** The string for ``key`` with {placeholders} filled; a count {n} picks the plural form. */
export function t(key, vars = {}) {
  let value = STRINGS[LANG][key] ?? STRINGS.ru[key] ?? key;
  if (typeof value === "object") {
    value = value[plurals.select(Number(vars.n) || 0)] ?? value.other;
  }
  return value.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!(name in vars)) return whole;
    const v = vars[name];
    return typeof v === "number" ? numbers.format(v) : String(v);
  });
}

/** A sandbox state in words ("none" when there is no sandbox); unknown states as they come. */
export function stateLabel(state) {
  if (state === "none") return t("sb.none");
  return has(`sb.state.${state}`) ? t(`sb.state.${state}`) : String(state);
}

/** Whether ``key`` has a string (used for optional per-stage labels). */
export function has(key) {
  return key in STRINGS[LANG];
}

const BROKER_NAMES = { kafka: "Kafka", rabbitmq: "RabbitMQ", nats: "NATS", activemq: "ActiveMQ" };

/** A broker's product name (the same in every language). */
export function brokerName(broker) {
  return BROKER_NAMES[broker] || broker;
}

export function formatNumber(n) {
  return numbers.format(n);
}

export function formatBytes(n) {
  if (n < 1024) return `${numbers.format(n)} ${t("unit.b")}`;
  if (n < 1024 * 1024) return `${decimals.format(n / 1024)} ${t("unit.kb")}`;
  return `${decimals.format(n / (1024 * 1024))} ${t("unit.mb")}`;
}

/** Elapsed time: "850 ms", "4.2 s", "2 min 5 s". */
export function formatDuration(ms) {
  if (ms < 1000) return t("unit.ms", { n: Math.round(ms) });
  if (ms < 60_000) return t("unit.s", { n: ms < 10_000 ? decimals.format(ms / 1000) : Math.floor(ms / 1000) });
  const s = Math.floor(ms / 1000);
  return t("unit.min", { m: Math.floor(s / 60), s: s % 60 });
}

/** A countdown as m:ss (or h:mm:ss). */
export function formatClock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Wall-clock time with milliseconds, for message rows. */
export function formatTime(ms) {
  const d = new Date(ms);
  const pad = (v, n = 2) => String(v).padStart(n, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
