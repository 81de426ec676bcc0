// The console's realtime seat (docs/protocol.md): `/ws/{room}` with `livecart.v1.json`,
// `hello` with the token, then welcome and ticks. Reconnects after a retryable close with
// full-jitter backoff (0.25 s doubling to 15 s, as clients/backoff.py) and resumes with
// `since` = the last offset seen. request() sends a frame with an `id` and matches its
// answer (`ack` or `error`) by `ref`.

const SUBPROTOCOL = "livecart.v1.json";
const BASE_S = 0.25;
const CAP_S = 15;

/** clients/viewer.py should_reconnect: no code, 1001, 1006, 1011-1014, 3000-3499. */
export function shouldReconnect(code) {
  if (!code) return true;
  if ([1001, 1006, 1011, 1012, 1013, 1014].includes(code)) return true;
  return code >= 3000 && code < 3500;
}

export class Realtime {
  /** handlers: onWelcome(welcome, resumed), onTick(tick), onFrame(frame),
   * onStatus(status, detail) with status "connecting" | "live" | "reconnecting" | "closed". */
  constructor(room, token, handlers) {
    this.room = room;
    this.token = token;
    this.handlers = handlers;
    this.offset = null;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.lastError = null;
    this.pending = new Map(); // request id -> {resolve, reject}
    this.counter = 0;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws/${encodeURIComponent(this.room)}`;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  open() {
    this.handlers.onStatus(this.offset ? "reconnecting" : "connecting");
    this.lastError = null;
    const ws = new WebSocket(this.url(), SUBPROTOCOL);
    this.ws = ws;
    ws.addEventListener("open", () => {
      const hello = { type: "hello", token: this.token };
      if (this.offset) hello.since = this.offset;
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", (event) => this.receive(event.data));
    ws.addEventListener("close", (event) => this.closed(ws, event.code, event.reason));
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "welcome") {
      const resumed = this.offset !== null;
      this.attempt = 0;
      this.offset = frame.offset;
      this.handlers.onStatus("live");
      this.handlers.onWelcome(frame, resumed);
    } else if (frame.type === "tick") {
      this.offset = frame.offset;
      this.handlers.onTick(frame);
    } else {
      if (frame.type === "error" && !frame.ref) this.lastError = frame;
      const waiting = frame.ref && this.pending.get(frame.ref);
      if (waiting) {
        this.pending.delete(frame.ref);
        if (frame.type === "error") waiting.reject(requestError(frame.code, frame.message, frame));
        else waiting.resolve(frame);
      }
      this.handlers.onFrame(frame);
    }
  }

  /** Send `frame` with a fresh `id`; resolves with its `ack`, rejects with an Error whose
   * `code` is the `error` frame's (or "disconnected" when the link is down or drops). */
  request(frame) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(requestError("disconnected", "not connected"));
        return;
      }
      this.counter += 1;
      const id = `c${Date.now().toString(36)}${this.counter}`;
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  failPending() {
    for (const { reject } of this.pending.values()) {
      reject(requestError("disconnected", "the connection dropped"));
    }
    this.pending.clear();
  }

  closed(ws, code, reason) {
    if (ws !== this.ws || this.stopped) return;
    this.ws = null;
    this.failPending();
    if (!shouldReconnect(code)) {
      const message = this.lastError ? this.lastError.message : reason || `closed (${code})`;
      this.handlers.onStatus("closed", { code, message, error: this.lastError });
      return;
    }
    const ceiling = Math.min(CAP_S, BASE_S * 2 ** this.attempt);
    this.attempt += 1;
    this.handlers.onStatus("reconnecting");
    this.timer = setTimeout(() => this.open(), Math.random() * ceiling * 1000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "signed out");
    this.ws = null;
    this.failPending();
  }

  /** Drop the connection and resume, as after a network failure (the "Reconnect" button;
   * 3000 is in the reconnect-and-resume range). */
  drop() {
    if (this.ws) this.ws.close(3000, "reconnect");
  }
}

/** An Error for a refused or lost request: `code` (the engine's), `frame` (its error frame). */
function requestError(code, message, frame = null) {
  const error = new Error(message || code);
  error.code = code;
  error.details = frame ? frame.details : undefined;
  error.frame = frame;
  return error;
}
