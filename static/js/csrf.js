// Django's CSRF token for the page's POSTs: the csrftoken cookie, or a form's hidden field where the
// cookie is not readable.
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (m) return decodeURIComponent(m[1]);
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value || "";
}
