// 简体中文 (i18n.js): the same keys as en.js; a key missing here shows in English.
export default {
  "conn.connecting": "连接中",
  "conn.live": "直播中",
  "conn.reconnecting": "重新连接中",
  "conn.closed": "已断开（{reason}）",
};
