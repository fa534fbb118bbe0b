// Source of static/vendor/xterm.js, the terminal emulator of the sandbox terminal panel (terminal.js).
// Not loaded by pages itself: scripts/build-vendor.sh bundles it with esbuild from the
// versions pinned in package-lock.json, and the result is checked in with xterm.css.
export { Terminal } from "@xterm/xterm";
export { FitAddon } from "@xterm/addon-fit";
