// The viewer's realtime connection (docs/protocol.md), as clients/viewer.py: `/ws/{room}`
// with `livecart.v1.json`, `hello` (token or device, `since` on resume), welcome, ticks.
// Requests carry an `id`; answers are matched by `ref`. Reconnects after a retryable close
// with full-jitter backoff (0.25 s doubling to 15 s) and resumes from the last offset.

const BASE_S = 0.25;
const CAP_S = 15;

/** clients/viewer.py should_reconnect: no code, 1001, 1006, 1011-1014, 3000-3499. */
export function shouldReconnect(code) {
  if (!code) return true;
  if ([1001, 1006, 1011, 1012, 1013, 1014].includes(code)) return true;
  return code >= 3000 && code < 3500;
}

let counter = 0;
export function requestId(prefix) {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter}${Math.random().toString(36).slice(2, 6)}`;
}

export class Realtime {
  /** on: {welcome(w, resumed), tick(t), frame(f), status(s, detail)}. */
  constructor(room, auth, on) {
    this.room = room;
    this.auth = auth; // {token} or {device}
    this.on = on;
    this.offset = null;
    this.attempt = 0;
    this.ws = null;
    this.pending = new Map();
    this.forced = false;
  }

  start() {
    this.open();
  }

  open() {
    this.on.status(this.offset ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(this.room)}`,
      "livecart.v1.json");
    this.ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", ...this.auth };
      if (this.offset) hello.since = this.offset;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event.code, event.reason);
  }

  receive(data) {
    const frame = JSON.parse(data);
    if (frame.type === "welcome") {
      const resumed = this.offset !== null && frame.recovered === true;
      this.offset = frame.offset;
      this.attempt = 0;
      this.on.status("live");
      this.on.welcome(frame, resumed);
      return;
    }
    if (frame.type === "tick") {
      this.offset = frame.offset;
      this.on.tick(frame);
      return;
    }
    if (frame.ref && this.pending.has(frame.ref)) {
      const resolve = this.pending.get(frame.ref);
      this.pending.delete(frame.ref);
      resolve(frame);
    }
    this.on.frame(frame);
  }

  /** Send a frame with an id; resolves with its ack or error (or null if the link drops). */
  request(frame, prefix = "r") {
    const id = frame.id || requestId(prefix);
    return new Promise((resolve) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        resolve(null);
        return;
      }
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Test hook: drop the socket, then resume (not before `holdMs`). */
  drop(holdMs = 0) {
    this.forced = true;
    this.holdMs = holdMs;
    if (this.ws) this.ws.close();
  }

  closed(ws, code, reason) {
    if (ws !== this.ws) return;
    for (const resolve of this.pending.values()) resolve(null);
    this.pending.clear();
    const again = this.forced || shouldReconnect(code);
    this.forced = false;
    if (!again) {
      this.on.status("closed", reason || String(code));
      return;
    }
    this.on.status("reconnecting");
    const ceiling = Math.min(CAP_S, BASE_S * 2 ** this.attempt);
    this.attempt += 1;
    setTimeout(() => this.open(), (this.holdMs || 0) + Math.random() * ceiling * 1000);
    this.holdMs = 0;
  }
}
