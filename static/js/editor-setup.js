// The editing basics both CodeMirror editors share: a cell's Python (cells.js) and an
// instructor's Markdown (author.js). Each adds its own language, keys and listeners.
import * as CM from "../vendor/codemirror.js";

/**
 * The line numbers stay put while the code scrolls sideways under them. A scroll that brings the
 * whole code into view (a tap that focuses the editor on a phone, a click that first scrolls its
 * target into view) lines the code's start up with the scroller's edge, under the numbers, where
 * the start of every line is hidden. A scroll padding as wide as the numbers stops such scrolls
 * beside them; the width is measured, as it grows with the number of lines.
 */
const gutterScrollPadding = CM.ViewPlugin.define((view) => {
  const measure = {
    key: "gutter-scroll-padding",
    read: (v) => v.dom.querySelector(".cm-gutters")?.offsetWidth ?? 0,
    write: (width, v) => {
      v.scrollDOM.style.scrollPaddingInlineStart = `${width}px`;
    },
  };
  view.requestMeasure(measure);
  return {
    update(update) {
      if (update.geometryChanged) update.view.requestMeasure(measure);
    },
  };
});

/**
 * Line numbers, history, brackets, the active line and the site's theme, with the usual keys;
 * ``keys`` (e.g. completion's) join the keymap before Tab's indenting.
 */
export function editorBasics({ keys = [] } = {}) {
  return [
    CM.lineNumbers(),
    CM.highlightActiveLineGutter(),
    CM.highlightSpecialChars(),
    CM.history(),
    CM.drawSelection(),
    CM.dropCursor(),
    CM.indentOnInput(),
    CM.bracketMatching(),
    CM.closeBrackets(),
    CM.highlightActiveLine(),
    CM.keymap.of([...CM.closeBracketsKeymap, ...CM.defaultKeymap, ...CM.historyKeymap, ...keys, CM.indentWithTab]),
    CM.academyTheme,
    gutterScrollPadding,
  ];
}
