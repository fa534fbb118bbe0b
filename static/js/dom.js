// Element builders for the live modules. DOM APIs only: the page's CSP forbids inline
// markup and inline styles, so nothing here takes HTML strings or style attributes.
const SVG_NS = "http://www.w3.org/2000/svg";

/** <tag class="className">text</tag>; text goes in as text, never as markup. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

/** A type="button" button (so it never submits a surrounding form). */
export function button(className, text, title) {
  const node = el("button", className, text);
  node.type = "button";
  if (title) node.title = title;
  return node;
}

/** An SVG element with the given attributes. */
export function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text != null) node.textContent = text;
  return node;
}

// The few stroke icons in use; live.css sizes and colours them through the .icon class.
const PATHS = {
  run: "M7 4.5v15l12-7.5z",
  stop: "M6.5 6.5h11v11h-11z",
  reset: "M4 12a8 8 0 1 0 2.4-5.7M4 4v4.5h4.5",
  copy: "M9 9h10v10H9zM5 15V5h10",
  check: "M5 12.5l4.5 4.5L19 7.5",
  lock: "M7 11V8a5 5 0 0 1 10 0v3M5.5 11h13v9h-13z",
  clock: "M12 7.5V12l3 2M12 3.5a8.5 8.5 0 1 0 0 17a8.5 8.5 0 0 0 0-17z",
  cross: "M7 7l10 10M17 7L7 17",
  cut: "M9.5 8.5L19 18M9.5 15.5L19 6M7 4a2.5 2.5 0 1 0 0 5a2.5 2.5 0 0 0 0-5zM7 15a2.5 2.5 0 1 0 0 5a2.5 2.5 0 0 0 0-5z",
  pause: "M8 5.5v13M16 5.5v13",
  trash: "M5 7h14M10 7V4.5h4V7M7 7l1 12.5h8L17 7",
};

/** An <svg class="icon icon-NAME"> hidden from assistive technology (labels carry the meaning). */
export function icon(name) {
  const node = svg("svg", { viewBox: "0 0 24 24", "aria-hidden": "true", class: `icon icon-${name}` });
  node.append(svg("path", { d: PATHS[name] || "" }));
  return node;
}

/** A button showing only an icon, labelled for screen readers and with a tooltip. */
export function iconButton(className, name, label) {
  const node = button(className, null, label);
  node.setAttribute("aria-label", label);
  node.append(icon(name));
  return node;
}
