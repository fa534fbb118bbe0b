// Source of static/vendor/codemirror.js, the one CodeMirror 6 bundle the pages load.
// Not loaded by pages itself: scripts/build-vendor.sh bundles it with esbuild from
// the versions pinned in package-lock.json, and the result is checked in.
import { EditorView, keymap } from "@codemirror/view";
import { Prec } from "@codemirror/state";
import { Language, LanguageSupport, syntaxHighlighting } from "@codemirror/language";
import { markdownLanguage, markdownKeymap } from "@codemirror/lang-markdown";
import { pythonLanguage } from "@codemirror/lang-python";
import { parseCode } from "@lezer/markdown";
import { tagHighlighter, tags } from "@lezer/highlight";

export {
  EditorView, ViewPlugin, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection, dropCursor, placeholder,
} from "@codemirror/view";
export { EditorState, Compartment, Prec } from "@codemirror/state";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export { indentOnInput, bracketMatching, indentUnit } from "@codemirror/language";
export { closeBrackets, closeBracketsKeymap, autocompletion, completionKeymap } from "@codemirror/autocomplete";
export { python } from "@codemirror/lang-python";

/**
 * Markdown for chapter files (GFM, as the server's renderer reads it), with Python
 * highlighted inside ```python fences. Built from the language alone rather than
 * lang-markdown's markdown(), which always pulls in HTML, CSS and JavaScript modes
 * (about 150 KB more for every learner who only needs the cells' Python).
 */
export function chapterMarkdown() {
  const parser = markdownLanguage.parser.configure(
    parseCode({ codeParser: (info) => (/^python\b/.test(info) ? pythonLanguage.parser : null) }),
  );
  const language = new Language(markdownLanguage.data, parser, [], "markdown");
  return new LanguageSupport(language, [Prec.high(keymap.of(markdownKeymap))]);
}

// Colours come from the site's CSS variables (site.css, live.css), so the
// editor follows the light, dark and system themes without being rebuilt.
// Tokens get stable `tok-*` classes that live.css colours (close to the Pygments
// styles the server uses for read-only code), so no colour lives in this file.
const academyHighlighter = tagHighlighter([
  { tag: [tags.keyword, tags.modifier], class: "tok-keyword" },
  { tag: [tags.bool, tags.null, tags.atom], class: "tok-atom" },
  { tag: tags.number, class: "tok-number" },
  { tag: tags.string, class: "tok-string" },
  { tag: [tags.special(tags.string), tags.escape, tags.regexp], class: "tok-string2" },
  { tag: tags.comment, class: "tok-comment" },
  { tag: tags.function(tags.definition(tags.variableName)), class: "tok-def" },
  { tag: [tags.definition(tags.className), tags.className], class: "tok-class" },
  { tag: [tags.function(tags.variableName), tags.function(tags.propertyName)], class: "tok-call" },
  { tag: tags.propertyName, class: "tok-property" },
  { tag: tags.variableName, class: "tok-name" },
  { tag: tags.operator, class: "tok-operator" },
  { tag: tags.meta, class: "tok-meta" },
  { tag: tags.invalid, class: "tok-invalid" },
  // Markdown (the instructors' editor)
  { tag: tags.heading, class: "tok-heading" },
  { tag: tags.strong, class: "tok-strong" },
  { tag: tags.emphasis, class: "tok-emphasis" },
  { tag: tags.strikethrough, class: "tok-strike" },
  { tag: [tags.link, tags.url], class: "tok-link" },
  { tag: tags.monospace, class: "tok-code" },
  { tag: tags.quote, class: "tok-quote" },
  { tag: [tags.processingInstruction, tags.contentSeparator, tags.labelName], class: "tok-mark" },
]);

export const academyTheme = [
  EditorView.theme({
    "&": { color: "var(--text)", backgroundColor: "var(--code-bg)", fontSize: ".88rem" },
    "&.cm-focused": { outline: "none" },
    ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.5" },
    ".cm-content": { caretColor: "var(--accent)", padding: ".55rem 0" },
    ".cm-line": { padding: "0 .9rem 0 .6rem" },
    ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--accent)", borderLeftWidth: "2px" },
    ".cm-gutters": {
      backgroundColor: "var(--code-bg)", color: "var(--cm-gutter-text)", border: "none",
      borderRight: "1px solid var(--border)",
    },
    ".cm-lineNumbers .cm-gutterElement": { padding: "0 .5rem 0 .7rem", minWidth: "2.2rem" },
    ".cm-activeLine": { backgroundColor: "var(--cm-active-line)" },
    ".cm-activeLineGutter": { backgroundColor: "var(--cm-active-line)", color: "var(--text)" },
    "&:not(.cm-focused) .cm-activeLine": { backgroundColor: "transparent" },
    "&:not(.cm-focused) .cm-activeLineGutter": { backgroundColor: "transparent", color: "var(--cm-gutter-text)" },
    ".cm-selectionBackground": { backgroundColor: "var(--cm-selection-blur)" },
    "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground": { backgroundColor: "var(--cm-selection)" },
    ".cm-content ::selection": { backgroundColor: "var(--cm-selection)" },
    "&.cm-focused .cm-matchingBracket": { backgroundColor: "var(--cm-bracket)", outline: "1px solid var(--border)" },
    "&.cm-focused .cm-nonmatchingBracket": { color: "var(--err)" },
    ".cm-placeholder": { color: "var(--muted)" },
    ".cm-tooltip": {
      backgroundColor: "var(--surface)", color: "var(--text)", border: "1px solid var(--border)",
      borderRadius: "6px", boxShadow: "var(--shadow)", overflow: "hidden",
    },
    ".cm-tooltip.cm-tooltip-autocomplete > ul": { fontFamily: "var(--mono)", fontSize: ".85rem" },
    ".cm-tooltip.cm-tooltip-autocomplete > ul > li[aria-selected]": {
      backgroundColor: "var(--accent)", color: "var(--accent-text)",
    },
    ".cm-completionDetail": { color: "var(--muted)" },
  }),
  syntaxHighlighting(academyHighlighter),
];
