// English: the catalog every other language falls back to, key by key (i18n.js). Keys are
// grouped by the module that shows them; `{name}` is filled in by t(); {one, other} are
// plural forms chosen by `count`.
export default {
  // app.js: the connection
  "conn.connecting": "connecting",
  "conn.live": "live",
  "conn.reconnecting": "reconnecting",
  "conn.closed": "disconnected ({reason})",
};
