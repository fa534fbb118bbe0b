// Switching the language keeps the reader's place: on a chapter page every language form
// ([data-language-switch], posting to Django's set_language) sends the page back with
// ?section=<the heading in view>, and the server opens that section in the other edition.
const body = document.querySelector("article.chapter .chapter-body");

/**
 * The id of the section being read: the topmost heading showing in the upper third of the window
 * (the reader scrolled it up there), else the last heading above the window (reading inside it);
 * "" above the first heading.
 */
function sectionInView() {
  if (!body) return "";
  const line = window.innerHeight / 3;
  let above = "";
  for (const heading of body.querySelectorAll("h2[id], h3[id]")) {
    const top = heading.getBoundingClientRect().top;
    if (top > line) break;
    if (top >= 0) return heading.id;
    above = heading.id;
  }
  return above;
}

for (const form of document.querySelectorAll("form[data-language-switch]")) {
  // "formdata" fires for form.submit() too (the select's autosubmit), unlike "submit".
  form.addEventListener("formdata", (event) => {
    const section = sectionInView();
    if (!section) return;
    const next = new URL(event.formData.get("next") || location.pathname, location.origin);
    next.searchParams.set("section", section);
    next.hash = "";
    event.formData.set("next", next.pathname + next.search);
  });
}
