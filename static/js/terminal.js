// The terminal panel of a chapter page: a shell in the learner's own sandbox (xterm.js).
// One button per broker of the chapter opens it; the socket is /ws/terminal/<broker>/ and
// the shell lives in the sandbox's agent, so a reload reattaches to it (with its scrollback):
// the open terminal's broker is remembered for the tab. Copy: select, then Ctrl+Shift+C
// (or Ctrl+C while text is selected); paste: Ctrl+Shift+V or Ctrl+V.
import { Terminal, FitAddon } from "../vendor/xterm.js";
import { gettext, brokerName } from "./i18n.js";
import { live } from "./live.js";

const panel = document.querySelector("[data-terminal-panel]");
const REMEMBER = "ba-terminal-open";

// pending: input waiting for the shell (a command block's "run" before the socket had a prompt).
const state = { broker: null, term: null, fit: null, socket: null, observer: null, wantReady: false, pending: [] };

function note(text) {
  const box = panel.querySelector("[data-terminal-note]");
  box.textContent = text || "";
  box.hidden = !text;
}

function socketUrl(broker, rows, cols) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws/terminal/${encodeURIComponent(broker)}/?rows=${rows}&cols=${cols}`;
}

function renderButtons() {
  const tabs = panel.querySelector("[data-terminal-tabs]");
  tabs.replaceChildren();
  for (const broker of live.chapterBrokers()) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sb-btn terminal-tab";
    button.dataset.terminalOpen = broker;
    const open = state.broker === broker;
    button.setAttribute("aria-pressed", String(open));
    button.textContent = open
      ? gettext("Закрыть терминал {broker}", { broker: brokerName(broker) })
      : gettext("Терминал {broker}", { broker: brokerName(broker) });
    button.addEventListener("click", () => (state.broker === broker ? close() : open_(broker)));
    tabs.append(button);
  }
}

function copySelection() {
  const text = state.term.getSelection();
  if (text && navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  return Boolean(text);
}

function keys(event) {
  if (event.type !== "keydown") return true;
  const ctrl = event.ctrlKey || event.metaKey;
  const key = event.key.toLowerCase();
  if (ctrl && event.shiftKey && key === "c") {
    copySelection();
    return false;
  }
  // Ctrl+C with text selected copies it (as in most terminals of desktop systems); without, it is ^C.
  if (ctrl && !event.shiftKey && key === "c" && state.term.hasSelection()) {
    copySelection();
    state.term.clearSelection();
    return false;
  }
  // Ctrl(+Shift)+V: the browser's own paste event reaches xterm.js, which sends the text as typed input.
  if (ctrl && key === "v") return false;
  return true;
}

function makeTerminal() {
  const screen = panel.querySelector("[data-terminal-screen]");
  screen.hidden = false;
  const style = getComputedStyle(document.documentElement);
  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    scrollback: 5000,
    fontFamily: style.getPropertyValue("--mono") || "monospace",
    fontSize: 13,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  term.attachCustomKeyEventHandler(keys);
  fit.fit();
  term.onData((data) => sendFrame({ type: "input", data }));
  term.onResize(({ rows, cols }) => sendFrame({ type: "resize", rows, cols }));
  // With the window, the panel or the layout: the terminal keeps filling its box.
  state.observer = new ResizeObserver(() => {
    try {
      fit.fit();
    } catch (error) {
      console.error(error);
    }
  });
  state.observer.observe(screen);
  state.term = term;
  state.fit = fit;
}

function sendFrame(frame) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(frame));
}

function connect() {
  const { term, broker } = state;
  const socket = new WebSocket(socketUrl(broker, term.rows, term.cols));
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  socket.addEventListener("open", () => {
    note("");
    panel.dataset.terminalState = "open";
  });
  socket.addEventListener("message", (event) => {
    if (event.data instanceof ArrayBuffer) {
      term.write(new Uint8Array(event.data));
      flushPending(); // the shell has spoken (its prompt or the scrollback): it reads its input now
      return;
    }
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "error") {
      // No ready sandbox: the page starts it and attaches once it is ready, so it says that rather
      // than the server's words (which ask whoever connects to start it themselves).
      const starting = gettext("Песочница запускается — терминал откроется, как только она будет готова.");
      term.write(`\r\n\x1b[33m${starting}\x1b[0m\r\n`);
      note(starting);
      state.wantReady = true;
      live.ensure([broker]);
    } else if (frame.message) {
      term.write(`\r\n\x1b[33m${frame.message}\x1b[0m\r\n`);
      note(frame.message);
    }
  });
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    panel.dataset.terminalState = "closed";
    if (event.code === 4401) note(gettext("Войдите, чтобы открыть терминал."));
    else if (event.code !== 4000 && event.code !== 4404) note(gettext("Связь с терминалом прервалась."));
  });
}

function open_(broker) {
  if (state.broker) close();
  state.broker = broker;
  sessionStorage.setItem(REMEMBER, broker);
  makeTerminal();
  connect();
  renderButtons();
  state.term.focus();
}

function close() {
  if (state.socket) {
    const socket = state.socket;
    state.socket = null;
    socket.close();
  }
  if (state.observer) state.observer.disconnect();
  if (state.term) state.term.dispose();
  Object.assign(state, { broker: null, term: null, fit: null, observer: null, wantReady: false, pending: [] });
  sessionStorage.removeItem(REMEMBER);
  panel.querySelector("[data-terminal-screen]").hidden = true;
  panel.dataset.terminalState = "";
  note("");
  renderButtons();
}

function flushPending() {
  if (!state.pending.length || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
  for (const data of state.pending.splice(0)) sendFrame({ type: "input", data });
}

// --- command blocks of the chapter ("in the terminal, run …") ---------------------------------

function runInTerminal(broker, text) {
  if (state.broker !== broker || !state.term) open_(broker);
  // Each line as typed and followed by Enter; the shell runs them in order.
  state.pending.push(text.replace(/\n+$/, "").replace(/\n/g, "\r") + "\r");
  flushPending();
  panel.scrollIntoView({ block: "nearest" });
  state.term.focus();
}

// The page's copy button is there as on any code block; this adds the one that types the commands.
function runButton(block) {
  const text = block.querySelector("code").textContent;
  const broker = block.dataset.broker;
  if (!broker) return;
  const actions = document.createElement("div");
  actions.className = "terminal-command-actions";
  const run = document.createElement("button");
  run.type = "button";
  run.className = "sb-btn primary";
  run.textContent = gettext("▶ В терминале {broker}", { broker: brokerName(broker) });
  run.addEventListener("click", () => runInTerminal(broker, text));
  actions.append(run);
  block.append(actions);
}

if (panel && live.enabled) {
  for (const block of document.querySelectorAll("[data-terminal-command]")) runButton(block);
  renderButtons();
  live.on("sandbox.state", (frame) => {
    const sandbox = frame.sandbox || {};
    if (sandbox.broker !== state.broker || !state.term) return;
    if (sandbox.state === "ready" && state.wantReady && !state.socket) {
      state.wantReady = false;
      connect();
    }
  });
  const remembered = sessionStorage.getItem(REMEMBER);
  if (remembered && live.chapterBrokers().includes(remembered)) open_(remembered);
}
