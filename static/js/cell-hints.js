// The one-line hint under a failed cell's traceback. The agent names the mistake and the
// connection variables to use (cell.exit's "hint": {code, variables, name?}); the words are here,
// in the page's language, with the variables as code.
import { gettext } from "./i18n.js";
import { el } from "./dom.js";

const TEXTS = {
  address: gettext("По этому адресу брокер не отвечает. Адрес брокера вашей песочницы берите из окружения: {variables}."),
  login: gettext("Брокер не принял логин или пароль. Берите их из окружения: {variables}."),
  missing: gettext("На брокере нет топика, очереди или потока, к которому обращается код: сначала создайте его или проверьте имя. Брокер песочницы: {variables}."),
  "not-ready": gettext("Брокер пока не готов или перезапускается: дождитесь статуса «готово» и запустите ячейку снова. Адрес брокера — в окружении: {variables}."),
  variable: gettext("В песочнице нет переменной окружения {name}. Адрес брокера — в {variables}."),
  "disk-full": gettext("Диск песочницы заполнен: брокер хранит {used} МБ из {cap} МБ и больше не принимает сообщений. RabbitMQ блокирует издателей, пока место не освободится (прочитайте или удалите очередь), Kafka останавливается (сбросьте песочницу). Задайте топикам и очередям предел хранения, например retention.bytes."),
};
/** Hints that name no connection variable: the agent's own, about the sandbox rather than the code. */
const WITHOUT_VARIABLES = new Set(["disk-full"]);

/** A <p class="cell-hint"> for ``hint``, or null for a hint this page has no words for. */
export function hintNode(hint) {
  const text = TEXTS[hint?.code];
  const variables = Array.isArray(hint?.variables) ? hint.variables.map(String) : [];
  if (!text || (!variables.length && !WITHOUT_VARIABLES.has(hint.code))) return null;
  const values = { variables, name: hint.name ? [String(hint.name)] : [] };
  const numbers = { used: hint.used_mb, cap: hint.cap_mb };
  const node = el("p", "cell-hint");
  node.setAttribute("role", "note");
  node.dataset.hint = hint.code;
  for (const part of text.split(/(\{\w+\})/)) {
    const name = /^\{(\w+)\}$/.exec(part)?.[1];
    if (name && name in numbers) {
      node.append(String(Number(numbers[name]) || 0));
    } else if (name && name in values) {
      values[name].forEach((value, i) => node.append(...(i ? [", "] : []), el("code", null, value)));
    } else if (part) {
      node.append(part);
    }
  }
  return node;
}
