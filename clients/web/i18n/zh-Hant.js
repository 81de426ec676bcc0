// 繁體中文 (i18n.js): the same keys as en.js; a key missing here shows in English.
export default {
  "conn.connecting": "連線中",
  "conn.live": "直播中",
  "conn.reconnecting": "重新連線中",
  "conn.closed": "已中斷（{reason}）",
};
