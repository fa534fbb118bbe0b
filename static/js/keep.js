// What a chapter page keeps across a reload, in this browser's localStorage: each cell's last
// output and the message panel's state. Keys carry the user (a shared computer shows nobody
// else's work) and the chapter; each kind keeps its most recent entries only, so storage
// never fills up however many chapters a learner opens.
const panel = document.querySelector("[data-live-panel]");
const article = document.querySelector("article.chapter");
const user = panel?.dataset.user || "";
const chapter = article ? `${article.dataset.course}/${article.dataset.chapter}` : "";
const LIMITS = { output: 150, panel: 60 }; // entries kept per kind, the least recently written go first

function storage() {
  try {
    return user && chapter ? window.localStorage : null;
  } catch (error) {
    return null; // storage disabled: the page works, it only forgets on reload
  }
}

function key(kind, name) {
  return `ba:${user}:${kind}:${chapter}${name ? `:${name}` : ""}`;
}

function indexKey(kind) {
  return `ba:${user}:${kind}:index`;
}

function readIndex(store, kind) {
  try {
    const index = JSON.parse(store.getItem(indexKey(kind)) || "{}");
    return index && typeof index === "object" ? index : {};
  } catch (error) {
    return {};
  }
}

/** The value kept under ``kind`` and ``name`` for this chapter, or null. */
export function recall(kind, name = "") {
  const store = storage();
  if (!store) return null;
  try {
    return JSON.parse(store.getItem(key(kind, name)) || "null");
  } catch (error) {
    return null;
  }
}

/** Keep ``value`` (JSON) for this chapter; the oldest entries of the kind make room. */
export function keep(kind, name, value) {
  const store = storage();
  if (!store) return false;
  const k = key(kind, name);
  const text = JSON.stringify(value);
  const index = readIndex(store, kind);
  index[k] = Date.now();
  const evict = (n) => {
    if (n <= 0) return;
    const oldest = Object.entries(index)
      .filter(([other]) => other !== k)
      .sort((a, b) => a[1] - b[1])
      .slice(0, n);
    for (const [other] of oldest) {
      store.removeItem(other);
      delete index[other];
    }
  };
  evict(Object.keys(index).length - (LIMITS[kind] || 50));
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      store.setItem(k, text);
      store.setItem(indexKey(kind), JSON.stringify(index));
      return true;
    } catch (error) {
      // Full (other sites' data, other kinds): give up the older half of this kind and try again.
      evict(Math.ceil(Object.keys(index).length / 2));
    }
  }
  return false;
}

/** Forget what is kept under ``kind`` and ``name`` for this chapter. */
export function forget(kind, name = "") {
  const store = storage();
  if (!store) return;
  const k = key(kind, name);
  store.removeItem(k);
  const index = readIndex(store, kind);
  delete index[k];
  try {
    store.setItem(indexKey(kind), JSON.stringify(index));
  } catch (error) {
    // the index is only for eviction; a stale entry in it is harmless
  }
}
