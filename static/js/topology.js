// The topology block of the live panel, drawn from the broker snapshots the server sends:
// Kafka topics, partitions and group lag; RabbitMQ exchanges, bindings and queues; NATS
// subjects and JetStream streams; ActiveMQ queues and topics. Missing fields show as "—".
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
let topoTimer = 0;
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
  for (const cells of rows) {
    const row = el("tr");
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

const TOPOLOGY = {
  kafka(data, root) {
    const topics = Array.isArray(data.topics) ? data.topics : [];
    const groups = Array.isArray(data.groups) ? data.groups : [];
    // topic -> partition -> group -> {committed, lag}
    const offsets = new Map();
    const topicGroups = new Map();
    for (const g of groups) {
      for (const o of g.offsets || []) {
        if (!offsets.has(o.topic)) offsets.set(o.topic, new Map());
        const byPart = offsets.get(o.topic);
        if (!byPart.has(o.partition)) byPart.set(o.partition, new Map());
        byPart.get(o.partition).set(g.group, o);
        if (!topicGroups.has(o.topic)) topicGroups.set(o.topic, new Set());
        topicGroups.get(o.topic).add(g.group);
      }
    }
    const names = [...new Set([...topics.map((tp) => tp.name), ...offsets.keys()])].filter((n) => n != null);
    const box = section(gettext("Топики"), names.length ? formatNumber(names.length) : "");
    if (!names.length) box.append(el("p", "topo-empty", gettext("Топиков пока нет.")));
    for (const name of names.sort()) {
      const topic = topics.find((tp) => tp.name === name) || { name, partitions: [] };
      const parts = [...(topic.partitions || [])];
      for (const p of offsets.get(name)?.keys() || []) if (!parts.some((x) => x.partition === p)) parts.push({ partition: p });
      parts.sort((a, b) => a.partition - b.partition);
      const gs = [...(topicGroups.get(name) || [])].sort();
      const totalHw = parts.reduce((sum, p) => sum + (num(p.high_watermark) || 0), 0);
      const card = el("div", "topo-card");
      const title = el("div", "topo-card-title");
      const sub = el("span", "topo-sub", `${ngettext("{n} партиция", "{n} партиций", parts.length, { n: parts.length })} · HW Σ ${formatNumber(totalHw)}`);
      sub.title = gettext("Сумма high watermark по партициям: сколько записей было записано в топик");
      title.append(el("span", "topo-name", name), sub);
      card.append(title);
      const headers = [{ text: "#", title: gettext("Партиция"), className: "num" }, { text: "HW", title: gettext("High watermark: смещение, которое получит следующее сообщение"), className: "num" }];
      for (const g of gs) headers.push({ text: g, title: `${gettext("Группа")} ${g}: ${gettext("Закоммиченное смещение группы").toLowerCase()} / ${gettext("Сколько сообщений группа ещё не прочитала").toLowerCase()}`, className: "group-col" });
      const rows = parts.map((p) => {
        const hw = num(p.high_watermark);
        const cells = [{ text: String(p.partition), className: "num" }, { text: show(hw), className: "num" }];
        for (const g of gs) {
          const o = offsets.get(name)?.get(p.partition)?.get(g);
          if (!o) {
            cells.push({ text: "—", className: "muted" });
            continue;
          }
          const wrap = el("span", "offset-cell");
          const committed = num(o.committed);
          const lag = num(o.lag) ?? (hw != null && committed != null ? Math.max(0, hw - committed) : null);
          const meter = el("span", "meter");
          const fill = el("span", "meter-fill");
          if (hw) fill.style.width = `${Math.round(Math.min(1, Math.max(0, (committed ?? 0) / hw)) * 100)}%`;
          meter.append(fill);
          wrap.append(el("span", "committed", show(committed)), lagNode(lag), meter);
          cells.push({ node: wrap, title: `${gettext("Закоммиченное смещение группы")}: ${show(committed)} · ${gettext("Сколько сообщений группа ещё не прочитала")}: ${show(lag)}` });
        }
        return cells;
      });
      card.append(table(headers, rows, "kafka-table"));
      box.append(card);
    }
    root.append(box);
    const gbox = section(gettext("Группы потребителей"), groups.length ? formatNumber(groups.length) : "");
    if (!groups.length) gbox.append(el("p", "topo-empty", gettext("Групп пока нет.")));
    else {
      const rows = groups.map((g) => {
        const lag = (g.offsets || []).reduce((s, o) => s + (num(o.lag) || 0), 0);
        const topicsOf = [...new Set((g.offsets || []).map((o) => o.topic))].join(", ");
        return [{ text: g.group, className: "mono" }, topicsOf, { node: lagNode(lag), className: "num" }];
      });
      gbox.append(table([gettext("Группа"), gettext("Топики"), { text: gettext("Лаг"), title: gettext("Сколько сообщений группа ещё не прочитала"), className: "num" }], rows));
    }
    root.append(gbox);
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
    const rows = queues.map((q) => [
      { text: q.name, className: "mono" },
      { text: show(q.messages_ready ?? q.messages), className: "num" },
      { text: show(q.messages_unacknowledged), className: "num" },
      { text: show(q.consumers), className: "num" },
    ]);
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

/** Exchanges on the left, queues on the right, a curve per binding labelled with its key. */
function rabbitDiagram(exchanges, queues, bindings) {
  const W = 360;
  const EX_W = 118;
  const Q_X = 222;
  const Q_W = W - Q_X;
  const EX_H = 34;
  const Q_H = 42;
  const GAP = 10;
  const exType = new Map(exchanges.map((x) => [x.name, x.type]));
  for (const b of bindings) if (!exType.has(b.source)) exType.set(b.source, "");
  // Right column: queues, then exchanges bound as destinations (exchange-to-exchange).
  const right = queues.map((q) => ({ id: `q:${q.name}`, name: q.name, queue: q }));
  for (const b of bindings) {
    if (b.destination_type === "exchange" && !right.some((r) => r.id === `x:${b.destination}`)) right.push({ id: `x:${b.destination}`, name: b.destination, exchange: true });
  }
  const rightId = (b) => (b.destination_type === "exchange" ? `x:${b.destination}` : `q:${b.destination}`);
  for (const b of bindings) if (!right.some((r) => r.id === rightId(b))) right.push({ id: rightId(b), name: b.destination, queue: { name: b.destination } });
  // Queues ordered by the first exchange that feeds them, so curves cross less.
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
  const height = Math.max(floor - GAP, right.length ? right[right.length - 1].y + Q_H : 0, EX_H) + 4;
  const maxDepth = Math.max(10, ...queues.map((q) => num(q.messages) ?? 0));

  const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, class: "rabbit-diagram", role: "img" });
  root.append(svg("title", {}, `${gettext("Обменники")} → ${gettext("Очереди")}`));
  const edges = svg("g", { class: "edges" });
  const labels = svg("g", { class: "edge-labels" });
  const pairs = new Map();
  for (const b of bindings) {
    const key = `${b.source}\u0000${rightId(b)}`;
    if (!pairs.has(key)) pairs.set(key, { b, keys: [] });
    pairs.get(key).keys.push(b.routing_key || "");
  }
  for (const { b, keys } of pairs.values()) {
    const from = leftByName.get(b.source);
    const to = rightById.get(rightId(b));
    if (!from || !to) continue;
    const x1 = EX_W;
    const y1 = from.y + EX_H / 2;
    const x2 = Q_X;
    const y2 = to.y + Q_H / 2;
    const mid = (x1 + x2) / 2;
    edges.append(svg("path", { d: `M${x1} ${y1} C${mid} ${y1} ${mid} ${y2} ${x2 - 4} ${y2}`, class: "edge" }));
    edges.append(svg("path", { d: `M${x2 - 6} ${y2 - 3.5} L${x2} ${y2} L${x2 - 6} ${y2 + 3.5}`, class: "edge-head" }));
    const label = keys.filter(Boolean).join(", ");
    if (label) {
      const text = clip(label, 14);
      const lx = mid + (x2 - mid) * 0.55;
      const ly = y1 + (y2 - y1) * 0.85;
      const w = text.length * 5.6 + 8;
      const g = svg("g", { class: "edge-label" });
      g.append(svg("title", {}, `${gettext("ключ маршрутизации")}: ${label}`));
      g.append(svg("rect", { x: lx - w / 2, y: ly - 7, width: w, height: 14, rx: 3 }));
      g.append(svg("text", { x: lx, y: ly + 3.5, "text-anchor": "middle" }, text));
      labels.append(g);
    }
  }
  root.append(edges);
  const nodes = svg("g", { class: "nodes" });
  for (const x of left) {
    const g = svg("g", { class: "node exchange" });
    g.append(svg("title", {}, `${gettext("обменник")} ${x.name || gettext("(по умолчанию)")}${x.type ? ` (${x.type})` : ""}`));
    g.append(svg("rect", { x: 0.5, y: x.y + 0.5, width: EX_W - 1, height: EX_H - 1, rx: 6 }));
    g.append(svg("text", { x: 8, y: x.y + 14, class: "node-name" }, clip(x.name || gettext("(по умолчанию)"), 18)));
    g.append(svg("text", { x: 8, y: x.y + 27, class: "node-sub" }, x.type || gettext("обменник")));
    nodes.append(g);
  }
  for (const r of right) {
    const g = svg("g", { class: `node ${r.exchange ? "exchange" : "queue"}` });
    const q = r.queue || {};
    const depth = num(q.messages) ?? (num(q.messages_ready) ?? 0) + (num(q.messages_unacknowledged) ?? 0);
    g.append(svg("title", {}, `${r.exchange ? gettext("обменник") : gettext("очередь")} ${r.name}\n${gettext("готово")}: ${show(q.messages_ready)} · ${gettext("без подтв.")}: ${show(q.messages_unacknowledged)} · ${gettext("потреб.")}: ${show(q.consumers)}`));
    g.append(svg("rect", { x: Q_X + 0.5, y: r.y + 0.5, width: Q_W - 1, height: Q_H - 1, rx: 6 }));
    g.append(svg("text", { x: Q_X + 8, y: r.y + 14, class: "node-name" }, clip(r.name, 19)));
    if (!r.exchange) {
      g.append(svg("text", { x: Q_X + 8, y: r.y + 27, class: "node-sub" }, `${show(depth)} ${gettext("в очереди")} · ${show(q.consumers)} ${gettext("потреб.")}`));
      const barW = Q_W - 17;
      g.append(svg("rect", { x: Q_X + 8, y: r.y + 32, width: barW, height: 4, rx: 2, class: "depth-track" }));
      if (depth > 0) g.append(svg("rect", { x: Q_X + 8, y: r.y + 32, width: Math.max(3, (barW * Math.min(depth, maxDepth)) / maxDepth), height: 4, rx: 2, class: "depth-fill" }));
    } else {
      g.append(svg("text", { x: Q_X + 8, y: r.y + 27, class: "node-sub" }, gettext("обменник")));
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
  topoTimer = 0;
  const brokers = [...snapshots.keys()];
  topologyBox.hidden = brokers.length === 0;
  if (!brokers.length) return;
  if (!snapshots.has(topoBroker)) topoBroker = brokers.includes(live.chapterBrokers()[0]) ? live.chapterBrokers()[0] : brokers[0];
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
  topologyBox.replaceChildren(details);
  live.on("sandbox.snapshot", (frame) => {
    const broker = frame.broker || live.brokerOf(frame.sandbox);
    if (!broker || !frame.data) return;
    snapshots.set(broker, { data: frame.data, json: JSON.stringify(frame.data), at: Date.now() });
    if (!topoTimer) topoTimer = setTimeout(renderTopology, 250);
  });
  live.on("sandbox.state", (frame) => {
    // A stopped sandbox has no topology to show any more.
    const s = frame.sandbox;
    if (s && (s.state === "stopped" || s.state === "failed") && snapshots.delete(s.broker)) renderTopology();
  });
}
