// The topology block of the live panel, drawn from the broker snapshots the server sends:
// Kafka topics, partitions and group lag; RabbitMQ exchanges, bindings and queues; NATS
// subjects and JetStream streams; ActiveMQ queues and topics; Redis streams and their groups.
// A broker without a renderer here is shown as its snapshot's JSON. Missing fields show as "—".
import { live } from "./live.js";
import { gettext, ngettext, brokerName, formatNumber, formatBytes, formatTime } from "./i18n.js";
import { el, button, svg } from "./dom.js";

const aside = document.querySelector("[data-live-panel]");

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}
function show(value) {
  const n = num(value);
  return n == null ? "—" : formatNumber(n);
}

const topologyBox = aside?.querySelector("[data-topology]");
const snapshots = new Map(); // broker -> {data, json, at}
let topoTabs;
let topoBody;
let topoStamp;
let topoBroker = "";
let topoPicked = false; // the learner chose a tab: keep it
let topoPending = false;
let topoRendered = "";

function table(headers, rows, className = "") {
  const wrap = el("div", "topo-table-wrap");
  const tbl = el("table", `topo-table ${className}`);
  const thead = el("thead");
  const tr = el("tr");
  for (const h of headers) {
    const th = el("th", h.className || "", h.text ?? h);
    if (h.title) th.title = h.title;
    tr.append(th);
  }
  thead.append(tr);
  const tbody = el("tbody");
  for (const entry of rows) {
    // A row is its cells, or {cells, data} to label the row with data-* attributes.
    const cells = Array.isArray(entry) ? entry : entry.cells;
    const row = el("tr");
    if (!Array.isArray(entry)) Object.assign(row.dataset, entry.data);
    for (const c of cells) {
      const td = el("td", c?.className || "");
      if (c instanceof Node) td.append(c);
      else if (c && typeof c === "object") {
        if (c.node) td.append(c.node);
        else td.textContent = c.text ?? "";
        if (c.title) td.title = c.title;
      } else td.textContent = c ?? "";
      row.append(td);
    }
    tbody.append(row);
  }
  tbl.append(thead, tbody);
  wrap.append(tbl);
  return wrap;
}

function section(title, extra) {
  const box = el("div", "topo-section");
  const h = el("h3", "topo-h", title);
  if (extra) h.append(el("span", "topo-h-extra", extra));
  box.append(h);
  return box;
}

function lagNode(lag) {
  const n = num(lag);
  if (n == null) return el("span", "lag", "—");
  return el("span", `lag ${n > 0 ? "lag-behind" : "lag-zero"}`, n > 0 ? formatNumber(n) : "0 ✓");
}

// Kafka's names of group states, as kafka-consumer-groups.sh and kafka-ui show them, with what each means.
const GROUP_STATES = {
  Stable: gettext("Участники получили партиции и читают"),
  Empty: gettext("В группе нет участников; закоммиченные смещения хранятся"),
  PreparingRebalance: gettext("Ребалансировка: группа ждёт, пока участники вступят заново"),
  CompletingRebalance: gettext("Ребалансировка: лидер раздаёт партиции"),
  Dead: gettext("Группа удалена"),
};

/** One consumer group as kafka-ui shows it: state, members with their partitions, and per partition committed / end / lag. */
function kafkaGroup(g) {
  const card = el("div", "topo-card kafka-group");
  card.dataset.group = g.group;
  const offsets = Array.isArray(g.offsets) ? g.offsets : [];
  const members = Array.isArray(g.members) ? g.members : [];
  const title = el("div", "topo-card-title");
  const name = el("span", "topo-name", g.group);
  const state = el("span", `group-state state-${String(g.state || "Unknown").toLowerCase()}`, g.state || "Unknown");
  state.title = GROUP_STATES[g.state] || gettext("Состояние группы неизвестно");
  const head = el("span", "group-head");
  head.append(name, state);
  const lag = offsets.reduce((sum, o) => sum + (num(o.lag) || 0), 0);
  const sub = el("span", "topo-sub", `${ngettext("{n} участник", "{n} участников", members.length, { n: members.length })} · ${gettext("лаг {n}", { n: lag })}`);
  title.append(head, sub);
  card.append(title);
  const list = el("ul", "group-members");
  for (const m of members) {
    const item = el("li", "group-member");
    item.dataset.client = m.client_id ?? "";
    const parts = (m.partitions || []).map((p) => `${p.topic}[${p.partition}]`).join(", ");
    item.append(el("span", "mono member-client", m.client_id || "—"), el("span", "member-host", m.host || ""), el("span", "mono member-parts", parts || gettext("без партиций")));
    item.title = `${m.member_id ?? ""}`;
    list.append(item);
  }
  if (!members.length) list.append(el("li", "group-member muted", gettext("Участников нет")));
  card.append(list);
  if (offsets.length) {
    const headers = [
      { text: gettext("Топик"), className: "" },
      { text: "#", title: gettext("Партиция"), className: "num" },
      { text: gettext("Коммит"), title: gettext("Закоммиченное смещение группы: следующая запись, которую она прочитает"), className: "num" },
      { text: gettext("Конец"), title: gettext("Конец лога (log-end offset): смещение, которое получит следующая запись"), className: "num" },
      { text: gettext("Лаг"), title: gettext("Сколько сообщений группа ещё не прочитала"), className: "num" },
      { text: gettext("Участник"), title: gettext("Кому из участников назначена партиция") },
    ];
    const rows = [...offsets]
      .sort((a, b) => String(a.topic).localeCompare(String(b.topic)) || a.partition - b.partition)
      .map((o) => ({
        data: { topic: o.topic, partition: String(o.partition) },
        cells: [
          { text: o.topic, className: "mono topo-clip", title: o.topic },
          { text: String(o.partition), className: "num" },
          { text: show(o.committed), className: "num committed" },
          { text: show(o.end_offset), className: "num end-offset" },
          { node: lagNode(o.lag), className: "num lag-cell" },
          { text: o.member || "—", className: `mono member${o.member ? "" : " muted"}` },
        ],
      }));
    card.append(table(headers, rows, "group-table"));
  }
  return card;
}

// A cluster's brokers stopped or started from the panel: node -> action, until the server answers.
const nodePending = new Map();
const nodeErrors = new Map(); // node -> the refusal the server sent, shown under the brokers

function replicaList(ids, isr, leader) {
  // Each replica by number: the leader bold, a replica out of the ISR struck through.
  const span = el("span", "replicas mono");
  for (const id of Array.isArray(ids) ? ids : []) {
    const inSync = Array.isArray(isr) && isr.includes(id);
    const node = el("span", `replica${id === leader ? " replica-leader" : ""}${inSync ? "" : " replica-out"}`, String(id));
    node.dataset.node = String(id);
    span.append(node, " ");
  }
  return span;
}

/** Kafka's topics (and, for a cluster, each partition's leader, replicas and ISR) and groups. */
function kafkaTopology(data, root, { replicated = false } = {}) {
  const topics = Array.isArray(data.topics) ? data.topics : [];
  const groups = Array.isArray(data.groups) ? data.groups : [];
  const box = section(gettext("Топики"), topics.length ? formatNumber(topics.length) : "");
  if (!topics.length) box.append(el("p", "topo-empty", gettext("Топиков пока нет.")));
  for (const topic of [...topics].sort((a, b) => String(a.name).localeCompare(String(b.name)))) {
    const parts = [...(topic.partitions || [])].sort((a, b) => a.partition - b.partition);
    const totalHw = parts.reduce((sum, p) => sum + (num(p.high_watermark) || 0), 0);
    const card = el("div", "topo-card");
    card.dataset.topic = topic.name;
    const title = el("div", "topo-card-title");
    const sub = el("span", "topo-sub", `${ngettext("{n} партиция", "{n} партиций", parts.length, { n: parts.length })} · HW Σ ${formatNumber(totalHw)}`);
    sub.title = gettext("Сумма high watermark по партициям: сколько записей было записано в топик");
    title.append(el("span", "topo-name", topic.name), sub);
    card.append(title);
    const headers = [
      { text: "#", title: gettext("Партиция"), className: "num" },
      { text: gettext("Начало"), title: gettext("Самое раннее смещение, которое ещё хранится в партиции"), className: "num" },
      { text: "HW", title: gettext("High watermark: смещение, которое получит следующее сообщение"), className: "num" },
    ];
    if (replicated) {
      headers.push(
        { text: gettext("Лидер"), title: gettext("Брокер, через который идут запись и чтение партиции") },
        { text: gettext("Реплики"), title: gettext("Брокеры с копией партиции; жирным — лидер, зачёркнут — вне ISR") },
        { text: "ISR", title: gettext("In-sync replicas: реплики, которые не отстают от лидера") },
      );
    }
    const rows = parts.map((p) => {
      const cells = [
        { text: String(p.partition), className: "num" },
        { text: show(p.start_offset), className: "num" },
        { text: show(p.high_watermark), className: "num" },
      ];
      if (replicated) {
        const leaderless = num(p.leader) == null || p.leader < 0;
        cells.push(
          { text: leaderless ? gettext("нет") : String(p.leader), className: `mono leader${leaderless ? " leader-none" : ""}` },
          { node: replicaList(p.replicas, p.isr, p.leader), className: "replicas-cell" },
          { text: (Array.isArray(p.isr) ? p.isr : []).join(", ") || "—", className: "mono isr" },
        );
      }
      return { cells, data: { partition: String(p.partition) } };
    });
    card.append(table(headers, rows, "kafka-table"));
    box.append(card);
  }
  root.append(box);
  const gbox = section(gettext("Группы потребителей"), groups.length ? formatNumber(groups.length) : "");
  if (!groups.length) gbox.append(el("p", "topo-empty", gettext("Групп пока нет.")));
  for (const g of groups) gbox.append(kafkaGroup(g));
  root.append(gbox);
}

const NODE_STATES = {
  running: () => gettext("работает"),
  starting: () => gettext("запускается"),
  stopping: () => gettext("останавливается"),
  stopped: () => gettext("остановлен"),
};

/** A cluster's brokers: which are up, which is the controller, and a button to stop or start each. */
function clusterBrokers(data, root) {
  const brokers = Array.isArray(data.brokers) ? data.brokers : [];
  const up = brokers.filter((b) => b.up).length;
  const box = section(gettext("Брокеры"), `${formatNumber(up)} / ${formatNumber(brokers.length)}`);
  const list = el("div", "cluster-brokers");
  for (const b of brokers) {
    const card = el("div", `topo-card cluster-broker ${b.up ? "broker-up" : "broker-down"}`);
    card.dataset.node = String(b.id);
    card.dataset.state = b.up ? "up" : "down";
    const name = el("span", "topo-name", gettext("Брокер {n}", { n: b.id }));
    const state = el("span", "topo-sub node-state", (NODE_STATES[b.state] || (() => String(b.state)))());
    card.append(name, state);
    if (b.id === data.controller) card.append(el("span", "topo-sub node-controller", gettext("активный контроллер")));
    const pending = nodePending.get(b.id);
    const action = b.state === "stopped" ? "start" : "stop";
    const label = action === "stop" ? gettext("Остановить") : gettext("Запустить");
    const btn = button(`node-action node-${action}`, pending ? gettext("Ждём…") : label);
    btn.dataset.node = String(b.id);
    btn.dataset.action = action;
    btn.disabled = Boolean(pending) || b.state === "starting" || b.state === "stopping";
    btn.addEventListener("click", () => {
      nodeErrors.delete(b.id);
      if (live.send({ type: "sandbox.node", broker: "kafka-cluster", node: b.id, action })) {
        nodePending.set(b.id, action);
        btn.disabled = true;
        btn.textContent = gettext("Ждём…");
      }
    });
    card.append(btn);
    if (nodeErrors.has(b.id)) card.append(el("p", "node-error", nodeErrors.get(b.id)));
    list.append(card);
  }
  box.append(list);
  root.append(box);
}

const TOPOLOGY = {
  kafka(data, root) {
    kafkaTopology(data, root);
  },

  "kafka-cluster"(data, root) {
    clusterBrokers(data, root);
    kafkaTopology(data, root, { replicated: true });
  },

  rabbitmq(data, root) {
    const exchanges = Array.isArray(data.exchanges) ? data.exchanges : [];
    const queues = Array.isArray(data.queues) ? data.queues : [];
    const bindings = (Array.isArray(data.bindings) ? data.bindings : []).filter((b) => b && b.source != null && b.destination != null);
    const box = section(`${gettext("Обменники")} → ${gettext("Очереди")}`);
    if (!queues.length && !exchanges.length) {
      box.append(el("p", "topo-empty", gettext("Очередей пока нет.")));
      root.append(box);
      return;
    }
    box.append(rabbitDiagram(exchanges, queues, bindings));
    root.append(box);
    const qbox = section(gettext("Очереди"), formatNumber(queues.length));
    const rows = queues.map((q) => ({
      data: { queue: q.name },
      cells: [
        { text: q.name, className: "mono" },
        { text: show(q.messages_ready ?? q.messages), className: "num ready" },
        { text: show(q.messages_unacknowledged), className: "num unacked" },
        { text: show(q.consumers), className: "num consumers" },
      ],
    }));
    if (rows.length) {
      qbox.append(
        table(
          [gettext("Имя"), { text: gettext("Готово"), className: "num" }, { text: gettext("Без подтв."), className: "num" }, { text: gettext("Потреб."), className: "num" }],
          rows,
        ),
      );
      root.append(qbox);
    }
  },

  nats(data, root) {
    const subjects = Array.isArray(data.subjects) ? data.subjects : Array.isArray(data.subscriptions) ? data.subscriptions : [];
    const streams = Array.isArray(data.streams) ? data.streams : [];
    const sbox = section(gettext("Subjects с подписчиками"), subjects.length ? formatNumber(subjects.length) : "");
    if (!subjects.length) sbox.append(el("p", "topo-empty", gettext("Подписчиков пока нет.")));
    else {
      const chips = el("div", "subject-chips");
      for (const s of subjects) {
        const c = el("span", "subject-chip");
        c.append(el("span", "mono", s.subject ?? ""), el("span", "subject-count", show(s.count)));
        c.title = `${s.subject}: ${show(s.count)} ${gettext("подписок")}`;
        chips.append(c);
      }
      sbox.append(chips);
    }
    root.append(sbox);
    const jbox = section(gettext("Потоки JetStream"), streams.length ? formatNumber(streams.length) : "");
    if (!streams.length) jbox.append(el("p", "topo-empty", gettext("Потоков пока нет.")));
    for (const s of streams) {
      const card = el("div", "topo-card");
      const title = el("div", "topo-card-title");
      title.append(el("span", "topo-name", s.name ?? ""), el("span", "topo-sub", `${show(s.messages)} ${gettext("сообщ.")} · ${num(s.bytes) != null ? formatBytes(s.bytes) : "—"}`));
      card.append(title);
      const subj = Array.isArray(s.subjects) ? s.subjects : s.subjects ? [s.subjects] : [];
      if (subj.length) {
        const line = el("div", "topo-line");
        for (const x of subj) line.append(el("span", "chip chip-muted", x));
        card.append(line);
      }
      const consumers = Array.isArray(s.consumers) ? s.consumers : [];
      if (consumers.length) {
        const rows = consumers.map((c) => {
          const pending = num(c.pending) ?? num(c.num_pending);
          return [
            { text: c.name ?? "", className: "mono" },
            { text: show(c.delivered ?? c.delivered_stream_seq), className: "num" },
            { text: show(c.ack_floor ?? c.ack_floor_stream_seq), className: "num" },
            { node: lagNode(pending), className: "num" },
          ];
        });
        card.append(
          table(
            [gettext("Потребитель"), { text: gettext("Доставлено"), className: "num" }, { text: gettext("Подтв. до"), className: "num" }, { text: gettext("Ждут"), className: "num" }],
            rows,
          ),
        );
      }
      jbox.append(card);
    }
    root.append(jbox);
  },

  redis(data, root) {
    const streams = Array.isArray(data.streams) ? data.streams : [];
    const box = section(gettext("Потоки Redis"), streams.length ? formatNumber(streams.length) : "");
    if (!streams.length) box.append(el("p", "topo-empty", gettext("Потоков пока нет.")));
    for (const s of streams) {
      const card = el("div", "topo-card redis-stream");
      card.dataset.name = s.name ?? "";
      const title = el("div", "topo-card-title");
      title.append(el("span", "topo-name", s.name ?? ""), el("span", "topo-sub", `${ngettext("{n} запись", "{n} записей", Number(s.length) || 0, { n: show(s.length) })} · ${gettext("последняя {id}", { id: s.last_id ?? "—" })}`));
      card.append(title);
      const groups = Array.isArray(s.groups) ? s.groups : [];
      if (groups.length) {
        const rows = groups.map((g) => ({
          data: { group: g.name ?? "" },
          cells: [
            { text: g.name ?? "", className: "mono" },
            { text: g.last_delivered_id ?? "—", className: "mono" },
            { text: show(g.pending), className: "num pending" },
            { node: lagNode(g.lag), className: "num lag-cell" },
            { text: (Array.isArray(g.consumers) ? g.consumers : []).map((c) => c.name).join(", ") || "—", className: "mono" },
          ],
        }));
        const headers = [gettext("Группа"), gettext("Доставлено до"), { text: gettext("Без подтв."), className: "num" }, { text: gettext("Отставание"), className: "num" }, gettext("Потребители")];
        card.append(table(headers, rows, "redis-groups"));
      }
      box.append(card);
    }
    root.append(box);
  },

  activemq(data, root) {
    const sections = [
      ["queue", gettext("Очереди"), data.queues],
      ["topic", gettext("Топики"), data.topics],
    ];
    let any = false;
    for (const [kind, title, items] of sections) {
      const rows = (Array.isArray(items) ? items : []).map((d) => {
        const cells = [{ text: d.name ?? "", className: "mono" }];
        if (kind === "queue") cells.push({ text: show(d.size ?? d.messages), className: "num" });
        cells.push({ text: show(d.enqueued), className: "num" }, { text: show(d.dequeued), className: "num" }, { text: show(d.consumers), className: "num" });
        return cells;
      });
      if (!rows.length) continue;
      any = true;
      const headers = [gettext("Имя")];
      if (kind === "queue") headers.push({ text: gettext("Лежат"), title: gettext("Сколько сообщений сейчас в очереди"), className: "num" });
      headers.push(
        { text: gettext("Пришло"), title: gettext("Сколько сообщений пришло (enqueueCount)"), className: "num" },
        { text: gettext("Ушло"), title: gettext("Сколько сообщений забрали потребители (dequeueCount)"), className: "num" },
        { text: gettext("Потреб."), className: "num" },
      );
      const box = section(title, formatNumber(rows.length));
      box.append(table(headers, rows, `activemq-${kind}s`));
      root.append(box);
    }
    if (!any) root.append(el("p", "topo-empty", gettext("Очередей и топиков пока нет.")));
  },
};

function clip(text, max) {
  const s = String(text ?? "");
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * An SVG text that must stay within ``width`` user units: clipped by an estimate now (monospace
 * advance is 0.6 em; a little more for safety) and to its measured length by fitTexts once drawn.
 */
function fittedText(attrs, text, width, fontSize) {
  const estimate = clip(text, Math.max(2, Math.floor(width / (fontSize * 0.62))));
  const node = svg("text", attrs, estimate);
  node.dataset.full = String(text ?? "");
  node.dataset.estimate = estimate;
  node.dataset.fit = String(width);
  return node;
}

/** Shorten every fitted text of ``root`` to the width it was given, measured; no-op while not rendered. */
function fitTexts(root) {
  for (const node of root.querySelectorAll("text[data-fit]")) {
    const full = node.dataset.full;
    const width = Number(node.dataset.fit);
    node.textContent = full;
    const length = node.getComputedTextLength();
    if (!length) {
      node.textContent = node.dataset.estimate;
      continue; // not laid out (a closed panel): fitted again when it opens
    }
    if (length <= width) continue;
    // Start from the proportional guess, then take off a character at a time until it fits.
    let keep = Math.max(1, Math.floor((full.length * width) / length));
    node.textContent = `${full.slice(0, keep)}…`;
    while (keep > 1 && node.getComputedTextLength() > width) {
      keep -= 1;
      node.textContent = `${full.slice(0, keep)}…`;
    }
  }
}

// The diagram's geometry in its own units (the SVG scales to the panel's width). Three columns that
// never share a pixel: exchanges, binding labels, queues; within a column, boxes are pushed apart.
const DIAGRAM = {
  width: 360,
  exW: 104,
  exH: 34,
  labelX: 114,
  labelW: 84,
  labelH: 14,
  qX: 208,
  qH: 42,
  gap: 10,
  labelGap: 4,
};

/** Exchanges on the left, queues on the right, a line per binding through a label with its routing key. */
function rabbitDiagram(exchanges, queues, bindings) {
  const { width: W, exW: EX_W, exH: EX_H, labelX: LX, labelW: LW, labelH: LH, qX: Q_X, qH: Q_H, gap: GAP, labelGap: LGAP } = DIAGRAM;
  const Q_W = W - Q_X;
  const exType = new Map(exchanges.map((x) => [x.name, x.type]));
  for (const b of bindings) if (!exType.has(b.source)) exType.set(b.source, "");
  // Right column: queues, then exchanges bound as destinations (exchange-to-exchange).
  const right = queues.map((q) => ({ id: `q:${q.name}`, name: q.name, queue: q }));
  for (const b of bindings) {
    if (b.destination_type === "exchange" && !right.some((r) => r.id === `x:${b.destination}`)) right.push({ id: `x:${b.destination}`, name: b.destination, exchange: true });
  }
  const rightId = (b) => (b.destination_type === "exchange" ? `x:${b.destination}` : `q:${b.destination}`);
  for (const b of bindings) if (!right.some((r) => r.id === rightId(b))) right.push({ id: rightId(b), name: b.destination, queue: { name: b.destination } });
  // Queues ordered by the first exchange that feeds them, so lines cross less.
  const exOrder = [...exType.keys()];
  const firstSource = (r) => {
    const idx = bindings.filter((b) => rightId(b) === r.id).map((b) => exOrder.indexOf(b.source));
    return idx.length ? Math.min(...idx) : exOrder.length;
  };
  right.sort((a, b) => firstSource(a) - firstSource(b) || a.name.localeCompare(b.name));
  right.forEach((r, i) => (r.y = i * (Q_H + GAP)));
  const rightById = new Map(right.map((r) => [r.id, r]));
  // Each exchange at the mean height of its queues, then pushed apart.
  const left = exOrder.map((name) => {
    const ys = bindings.filter((b) => b.source === name).map((b) => rightById.get(rightId(b)).y + Q_H / 2);
    return { name, type: exType.get(name), want: ys.length ? ys.reduce((a, b) => a + b, 0) / ys.length - EX_H / 2 : Infinity };
  });
  left.sort((a, b) => a.want - b.want);
  let floor = 0;
  for (const x of left) {
    x.y = Math.max(floor, Number.isFinite(x.want) ? x.want : floor);
    floor = x.y + EX_H + GAP;
  }
  const leftByName = new Map(left.map((x) => [x.name, x]));
  // One line per exchange and destination; its routing keys together on one label.
  const pairs = new Map();
  for (const b of bindings) {
    const key = `${b.source}\u0000${rightId(b)}`;
    if (!pairs.has(key)) pairs.set(key, { b, keys: [] });
    pairs.get(key).keys.push(b.routing_key || "");
  }
  const lines = [];
  for (const { b, keys } of pairs.values()) {
    const from = leftByName.get(b.source);
    const to = rightById.get(rightId(b));
    if (!from || !to) continue;
    const y1 = from.y + EX_H / 2;
    const y2 = to.y + Q_H / 2;
    // Fanout and headers exchanges ignore routing keys (pika still sends the queue's name as one).
    const keyed = !["fanout", "headers"].includes(exType.get(b.source));
    lines.push({ b, y1, y2, label: keyed ? keys.filter(Boolean).join(", ") : "", want: (y1 + y2) / 2 });
  }
  // Labels in their own column, each as near the middle of its line as the ones above allow.
  const labelled = lines.filter((l) => l.label).sort((a, b) => a.want - b.want || a.y2 - b.y2);
  let labelFloor = 0;
  for (const l of labelled) {
    l.ly = Math.max(labelFloor, l.want - LH / 2);
    labelFloor = l.ly + LH + LGAP;
  }
  const bottom = Math.max(floor - GAP, right.length ? right[right.length - 1].y + Q_H : 0, labelFloor - LGAP, EX_H);
  const height = bottom + 4;
  const maxDepth = Math.max(10, ...queues.map((q) => num(q.messages) ?? 0));

  const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, class: "rabbit-diagram", role: "img" });
  root.append(svg("title", {}, `${gettext("Обменники")} → ${gettext("Очереди")}`));
  const edges = svg("g", { class: "edges" });
  const labels = svg("g", { class: "edge-labels" });
  for (const l of lines) {
    const x1 = EX_W;
    const x2 = Q_X;
    if (l.label) {
      // Exchange → label's left end, label's right end → destination.
      const cy = l.ly + LH / 2;
      const m1 = (x1 + LX) / 2;
      const m2 = (LX + LW + x2) / 2;
      edges.append(svg("path", { d: `M${x1} ${l.y1} C${m1} ${l.y1} ${m1} ${cy} ${LX} ${cy} M${LX + LW} ${cy} C${m2} ${cy} ${m2} ${l.y2} ${x2 - 4} ${l.y2}`, class: "edge" }));
      const g = svg("g", { class: "edge-label" });
      g.dataset.source = l.b.source;
      g.dataset.destination = l.b.destination;
      g.append(svg("title", {}, `${gettext("ключ маршрутизации")}: ${l.label}`));
      g.append(svg("rect", { x: LX, y: l.ly, width: LW, height: LH, rx: 3 }));
      g.append(fittedText({ x: LX + LW / 2, y: l.ly + LH / 2 + 3.3, "text-anchor": "middle" }, l.label, LW - 8, 9.5));
      labels.append(g);
    } else {
      const mid = (x1 + x2) / 2;
      edges.append(svg("path", { d: `M${x1} ${l.y1} C${mid} ${l.y1} ${mid} ${l.y2} ${x2 - 4} ${l.y2}`, class: "edge" }));
    }
    edges.append(svg("path", { d: `M${x2 - 6} ${l.y2 - 3.5} L${x2} ${l.y2} L${x2 - 6} ${l.y2 + 3.5}`, class: "edge-head" }));
  }
  root.append(edges);
  const nodes = svg("g", { class: "nodes" });
  for (const x of left) {
    const g = svg("g", { class: "node exchange" });
    g.dataset.name = x.name;
    g.append(svg("title", {}, `${gettext("обменник")} ${x.name || gettext("(по умолчанию)")}${x.type ? ` (${x.type})` : ""}`));
    g.append(svg("rect", { x: 0.5, y: x.y + 0.5, width: EX_W - 1, height: EX_H - 1, rx: 6 }));
    g.append(fittedText({ x: 8, y: x.y + 14, class: "node-name" }, x.name || gettext("(по умолчанию)"), EX_W - 16, 11));
    g.append(fittedText({ x: 8, y: x.y + 27, class: "node-sub" }, x.type || gettext("обменник"), EX_W - 16, 10));
    nodes.append(g);
  }
  for (const r of right) {
    const g = svg("g", { class: `node ${r.exchange ? "exchange" : "queue"}` });
    g.dataset.name = r.name;
    const q = r.queue || {};
    const depth = num(q.messages) ?? (num(q.messages_ready) ?? 0) + (num(q.messages_unacknowledged) ?? 0);
    g.append(svg("title", {}, `${r.exchange ? gettext("обменник") : gettext("очередь")} ${r.name}\n${gettext("готово")}: ${show(q.messages_ready)} · ${gettext("без подтв.")}: ${show(q.messages_unacknowledged)} · ${gettext("потреб.")}: ${show(q.consumers)}`));
    g.append(svg("rect", { x: Q_X + 0.5, y: r.y + 0.5, width: Q_W - 1, height: Q_H - 1, rx: 6 }));
    g.append(fittedText({ x: Q_X + 8, y: r.y + 14, class: "node-name" }, r.name, Q_W - 16, 11));
    if (!r.exchange) {
      g.append(fittedText({ x: Q_X + 8, y: r.y + 27, class: "node-sub" }, `${show(depth)} ${gettext("в очереди")} · ${show(q.consumers)} ${gettext("потреб.")}`, Q_W - 16, 10));
      const barW = Q_W - 17;
      g.append(svg("rect", { x: Q_X + 8, y: r.y + 32, width: barW, height: 4, rx: 2, class: "depth-track" }));
      if (depth > 0) g.append(svg("rect", { x: Q_X + 8, y: r.y + 32, width: Math.max(3, (barW * Math.min(depth, maxDepth)) / maxDepth), height: 4, rx: 2, class: "depth-fill" }));
    } else {
      g.append(fittedText({ x: Q_X + 8, y: r.y + 27, class: "node-sub" }, gettext("обменник"), Q_W - 16, 10));
    }
    nodes.append(g);
  }
  root.append(nodes, labels);
  const wrap = el("div", "rabbit-wrap");
  wrap.append(root);
  return wrap;
}

function genericTopology(data, root) {
  root.append(el("pre", "topo-raw", JSON.stringify(data, null, 2)));
}

function renderTopology() {
  topoPending = false;
  const brokers = [...snapshots.keys()];
  topologyBox.hidden = brokers.length === 0;
  if (!brokers.length) return;
  // The chapter's own broker as soon as it has shown itself, whichever sandbox answered first.
  const preferred = live.chapterBrokers().find((b) => snapshots.has(b));
  if (!topoPicked && preferred) topoBroker = preferred;
  if (!snapshots.has(topoBroker)) topoBroker = brokers[0];
  // Tabs only when more than one broker has shown itself.
  topoTabs.hidden = brokers.length < 2;
  if (topoTabs.childElementCount !== brokers.length) {
    topoTabs.replaceChildren(
      ...brokers.map((b) => {
        const tab = button(`topo-tab broker-${b}`, brokerName(b));
        tab.dataset.broker = b;
        tab.setAttribute("role", "tab");
        tab.addEventListener("click", () => {
          topoBroker = b;
          topoPicked = true;
          renderTopology();
        });
        return tab;
      }),
    );
  }
  for (const tab of topoTabs.children) tab.setAttribute("aria-selected", String(tab.dataset.broker === topoBroker));
  const snap = snapshots.get(topoBroker);
  topoStamp.textContent = gettext("обновлено {t}", { t: formatTime(snap.at).slice(0, 8) });
  const key = `${topoBroker}\u0000${snap.json}`;
  if (key === topoRendered) return;
  topoRendered = key;
  const body = el("div", "topo-broker");
  try {
    (TOPOLOGY[topoBroker] || genericTopology)(snap.data || {}, body);
  } catch (error) {
    console.error(error);
    genericTopology(snap.data, body);
  }
  topoBody.replaceChildren(body);
  fitTexts(body);
}

if (topologyBox && live.enabled) {
  const details = el("details", "topo-details");
  details.open = true;
  const summary = el("summary", "panel-head");
  const h2 = el("h2", "", gettext("Брокер изнутри"));
  topoStamp = el("span", "topo-stamp muted");
  summary.append(h2, topoStamp);
  topoTabs = el("div", "topo-tabs");
  topoTabs.setAttribute("role", "tablist");
  topoBody = el("div", "topo-body");
  details.append(summary, topoTabs, topoBody);
  // Texts of a closed panel cannot be measured; fit them when it opens.
  details.addEventListener("toggle", () => details.open && fitTexts(topoBody));
  topologyBox.replaceChildren(details);
  live.on("sandbox.snapshot", (frame) => {
    const broker = frame.broker || live.brokerOf(frame.sandbox);
    if (!broker || !frame.data) return;
    snapshots.set(broker, { data: frame.data, json: JSON.stringify(frame.data), at: Date.now() });
    // Drawn at once, not on a timer: browsers delay timers of pages in the background by up to a second,
    // and the panel must keep up with the broker. A microtask only merges frames of the same task.
    if (!topoPending) {
      topoPending = true;
      queueMicrotask(renderTopology);
    }
  });
  live.on("sandbox.node", (frame) => {
    // The stop or start is done (or refused): the button comes back, and the next snapshot shows the broker.
    nodePending.delete(frame.node);
    if (frame.error) nodeErrors.set(frame.node, frame.error);
    topoRendered = "";
    if (snapshots.size) renderTopology();
  });
  live.on("error", (frame) => {
    // A stop or start refused before it reached the sandbox (too many requests a minute) gets no
    // sandbox.node answer: the waiting buttons come back with the reason.
    if (!frame.refused || !nodePending.size) return;
    for (const node of nodePending.keys()) nodeErrors.set(node, frame.message);
    nodePending.clear();
    topoRendered = "";
    if (snapshots.size) renderTopology();
  });
  live.on("sandbox.state", (frame) => {
    // A stopped sandbox has no topology to show any more.
    const s = frame.sandbox;
    if (s && (s.state === "stopped" || s.state === "failed") && snapshots.delete(s.broker)) renderTopology();
  });
}
