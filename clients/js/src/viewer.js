import { Backoff, compareOffsets, shedDelayMs, shouldReconnect } from './backoff.js';
import { resolveCodec } from './codec.js';
import { Emitter } from './emitter.js';
import { LivecartError } from './errors.js';

/** @typedef {import('../index.js').Message} Message */
/** @typedef {import('../index.js').Entry} Entry */

const OPEN = 1; // WebSocket.OPEN, the same in every implementation
const MAX_COMMENTS = 500; // comments kept in `state.comments` (oldest dropped first)

/**
 * The engine's WebSocket URL of a room: `url` may be the engine's base
 * (`https://live.example`, `ws://127.0.0.1:8000`) or already `.../ws/{room}`.
 * @param {string} url
 * @param {string} room
 */
export function roomUrl(url, room) {
  const base = url.replace(/^http(s?):\/\//, 'ws$1://');
  if (/\/ws\/[^/]+\/?$/.test(base.split('?')[0])) return base;
  return `${base.replace(/\/+$/, '')}/ws/${encodeURIComponent(room)}`;
}

/** The engine's HTTP base for a WebSocket or HTTP url. @param {string} url */
export function httpBase(url) {
  return url.replace(/^ws(s?):\/\//, 'http$1://').replace(/\/ws\/.*$/, '').replace(/\/+$/, '');
}

function newPrefix() {
  const bytes = new Uint8Array(4);
  globalThis.crypto.getRandomValues(bytes);
  return `${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}-`;
}

/** @param {Entry} entry */
function productCard(entry) {
  const { kind, ref, ts, id, ...rest } = entry;
  return { ...rest, id: ref };
}

/**
 * One viewer of one room: connects, says hello, keeps the room's state from `welcome` and
 * ticks, resumes after a dropped connection from the last offset (no gap, no duplicate),
 * and matches requests to their answers by id.
 */
export class LivecartViewer extends Emitter {
  /**
   * @param {import('../index.js').ViewerOptions} options
   */
  constructor(options) {
    super();
    const { url, room, token, device, ref, codec, requestTimeoutMs = 10000, backoff = {}, reconnect = true } = options;
    if (!url || !room) throw new TypeError('url and room are required');
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') {
      throw new TypeError('no WebSocket implementation: pass options.WebSocket (e.g. from the "ws" package)');
    }
    this.url = roomUrl(url, room);
    this.roomId = room;
    this.token = token ?? null;
    this.device = device ?? null;
    this.ref = ref ?? null;
    this.codec = resolveCodec(codec);
    this.requestTimeoutMs = requestTimeoutMs;
    this.reconnect = reconnect;
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff({ ...backoff, random: this.random });
    this._WS = WS;
    /** @type {any} the open socket, or null */
    this.socket = null;
    /** @type {Message | null} the last welcome */
    this.welcome = null;
    /** @type {string | null} the last offset seen: where a reconnect resumes */
    this.offset = null;
    this.seq = 0;
    this.gaps = 0; // ticks missed or resumes not recovered (a server bug if > 0)
    this.duplicates = 0; // entries at or before the offset already held, left out
    this.reconnects = 0;
    this.sampledOut = 0;
    /** @type {number | null} */
    this.closeCode = null;
    this._closing = false;
    this._holdMs = 0; // drop(): the least wait before the reconnect
    /** @type {'idle' | 'connecting' | 'live' | 'reconnecting' | 'closed'} */
    this.status = 'idle';
    this._prefix = newPrefix();
    this._nextId = 1;
    /** @type {Map<string, {message: Message, resolve: Function, reject: Function, timer: any}>} */
    this._pending = new Map();
    /** @type {{timer: any, wake: Function} | null} */
    this._sleep = null;
    this.state = this._emptyState();
  }

  /** @returns {import('../index.js').ViewerState} */
  _emptyState() {
    return { room: null, product: null, pinned: null, sales: {}, drops: {}, polls: {}, auctions: {}, stats: {}, comments: [], notices: [] };
  }

  get connected() {
    return this.socket !== null;
  }

  /** @param {'connecting' | 'live' | 'reconnecting' | 'closed'} status @param {Record<string, any>} [detail] */
  _setStatus(status, detail = {}) {
    if (status === this.status && status !== 'closed') return;
    this.status = status;
    this.emit('status', { ...detail, status });
  }

  // ---- connection ------------------------------------------------------------------

  /**
   * Connect, say hello and resolve with the welcome. Rejects with a LivecartError if the
   * engine refuses (`token_invalid`, `room_not_found`...) or cannot be reached.
   * @returns {Promise<Message>}
   */
  async connect() {
    this._closing = false;
    this.offset = null; // a first join; reconnects resume
    this.backoff.reset();
    return this._open();
  }

  /**
   * Connect and stay connected: like connect(), but a first attempt that fails for a
   * retryable reason (engine unreachable, shedding load) is retried with the backoff, as
   * a dropped connection is. Never rejects: a refusal (`token_invalid`, `room_not_found`,
   * `banned`...) ends in status `closed` and a `close` event carrying the error. Resolves
   * with the first welcome, or null when the viewer gave up or was closed. For pages and
   * apps that show the connection's state (`status` events) rather than handle a promise.
   * @returns {Promise<Message | null>}
   */
  async start() {
    try {
      return await this.connect();
    } catch (err) {
      const error = /** @type {LivecartError} */ (err);
      if (this._closing) return null;
      if (!this.reconnect || (!error.retryable && error.code !== 'connect_failed')) {
        this.emit('error', error);
        this._final(error.code, error);
        return null;
      }
      const retryAfterMs = error.retryAfterMs;
      // Retried as a dropped connection is, and shown as such: the first attempt failed.
      this._setStatus('reconnecting', { code: this.closeCode, reason: error.detail });
      this._reconnectLoop(retryAfterMs === undefined ? 0 : shedDelayMs(retryAfterMs, this.random));
      const [welcome] = await Promise.race([
        this._next('welcome'),
        this._next('status', (/** @type {{status: string}} */ s) => s.status === 'closed').then(() => [null]),
      ]);
      return welcome;
    }
  }

  /**
   * Resolves with the arguments of the next event `name` whose first argument passes `where`.
   * @param {string} name @param {(payload: any) => boolean} [where]
   * @returns {Promise<any[]>}
   */
  _next(name, where = () => true) {
    return new Promise((resolve) => {
      const off = this.on(name, (/** @type {any[]} */ ...args) => {
        if (!where(args[0])) return;
        off();
        resolve(args);
      });
    });
  }

  /**
   * Drop the connection as a network failure would, then reconnect and resume (after at
   * least `holdMs`): the "Reconnect" button of a page, and tests. Close code 3000 is in the
   * reconnect-and-resume range (docs/protocol.md § Close codes).
   * @param {{holdMs?: number}} [options]
   */
  drop({ holdMs = 0 } = {}) {
    this._holdMs = holdMs;
    try {
      this.socket?.close(3000, 'reconnect');
    } catch {
      /* already closing */
    }
  }

  _hello() {
    /** @type {Message} */
    const hello = { type: 'hello' };
    if (this.token) hello.token = this.token;
    if (this.offset) hello.since = this.offset;
    if (this.device) hello.device = this.device;
    if (this.ref) hello.ref = this.ref;
    return hello;
  }

  /**
   * One connection: resolves with the welcome once joined. `retry`: an attempt of the
   * reconnect loop (after a drop, or after start()'s first attempt failed), shown as
   * `reconnecting` so a page can say it is retrying.
   * @param {boolean} [retry]
   * @returns {Promise<Message>}
   */
  _open(retry = false) {
    this._setStatus(retry ? 'reconnecting' : 'connecting');
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this._WS(this.url, [this.codec.subprotocol]);
      } catch (err) {
        reject(new LivecartError('connect_failed', String(err), { retryable: true }));
        return;
      }
      ws.binaryType = 'arraybuffer';
      let settled = false;
      const fail = (/** @type {LivecartError} */ err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          ws.close();
        } catch {
          /* already closing */
        }
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new LivecartError('connect_failed', 'no welcome in time', { retryable: true })),
        this.requestTimeoutMs,
      );
      ws.onopen = () => {
        try {
          ws.send(this.codec.encode(this._hello()));
        } catch (err) {
          fail(new LivecartError('connect_failed', String(err), { retryable: true }));
        }
      };
      // Browsers follow an error with a close event; Node 20's WebSocket may not after a
      // refused handshake (e.g. a 503 while the engine sheds load): fail now, not at the timeout.
      ws.onerror = () => fail(new LivecartError('connect_failed', 'the connection failed', { retryable: true }));
      ws.onclose = (/** @type {{code: number, reason: string}} */ ev) => {
        this.closeCode = ev.code;
        fail(
          new LivecartError('connect_failed', `closed before welcome (${ev.code} ${ev.reason || ''})`.trim(), {
            retryable: true,
            details: { close_code: ev.code },
          }),
        );
      };
      ws.onmessage = (/** @type {{data: any}} */ ev) => {
        let message;
        try {
          message = this.codec.decode(ev.data);
        } catch (err) {
          fail(new LivecartError('bad_frame', `undecodable frame: ${err}`, { retryable: true }));
          return;
        }
        if (message?.type === 'welcome') {
          settled = true;
          clearTimeout(timer);
          this._attach(ws);
          this._setStatus('live');
          this._onWelcome(message);
          resolve(message);
        } else if (message?.type === 'error') {
          fail(LivecartError.fromWire(message)); // a refusal; the engine closes
        } else {
          fail(new LivecartError('bad_frame', `expected welcome, got ${message?.type}`, { retryable: true }));
        }
      };
    });
  }

  /** @param {any} ws */
  _attach(ws) {
    this.socket = ws;
    this.closeCode = null;
    ws.onmessage = (/** @type {{data: any}} */ ev) => {
      let message;
      try {
        message = this.codec.decode(ev.data);
      } catch (err) {
        this.emit('error', new LivecartError('bad_frame', `undecodable frame: ${err}`));
        return;
      }
      this._onFrame(message);
    };
    ws.onclose = (/** @type {{code: number, reason: string}} */ ev) => this._onClosed(ws, ev.code, ev.reason);
  }

  /** @param {any} ws @param {number} code @param {string} reason */
  _onClosed(ws, code, reason) {
    if (ws !== this.socket) return;
    this.socket = null;
    this.closeCode = code;
    const willReconnect = !this._closing && this.reconnect && shouldReconnect(code);
    // A request unanswered at 1001 was not served (docs/protocol.md § Close codes): keep
    // it and send it again, with its id, once resumed. After any other close it may or
    // may not have been applied: fail it.
    if (!(willReconnect && code === 1001)) this._failPending('disconnected', `connection closed (${code})`);
    this.emit('close', { code, reason, willReconnect });
    if (willReconnect) {
      this._setStatus('reconnecting', { code, reason });
      this._reconnectLoop();
    } else {
      this._failPending('closed', `connection closed (${code})`);
      if (!this._closing) this._setStatus('closed', { code, reason }); // close() says nothing
    }
  }

  /** @param {number} [toldMs] the engine's retry_after_ms, with jitter on top */
  async _reconnectLoop(toldMs = 0) {
    while (!this._closing) {
      const delay = this.backoff.next();
      if (delay === null) {
        this._final('reconnect attempts exhausted');
        return;
      }
      await this._wait(Math.max(delay, toldMs, this._holdMs));
      toldMs = 0;
      this._holdMs = 0;
      if (this._closing) return;
      const resuming = this.offset !== null; // else a first join being retried (start())
      try {
        const welcome = await this._open(true);
        if (this._closing) {
          this.socket?.close(1000);
          return;
        }
        this.backoff.reset();
        if (resuming) {
          this.reconnects += 1;
          this.emit('reconnect', { recovered: welcome.recovered, offset: this.offset });
        }
        this._resendPending();
        return;
      } catch (err) {
        const error = /** @type {LivecartError} */ (err);
        if (error.retryAfterMs !== undefined) toldMs = shedDelayMs(error.retryAfterMs, this.random);
        if (!error.retryable && error.code !== 'connect_failed') {
          this.emit('error', error);
          this._final(error.code, error);
          return;
        }
      }
    }
  }

  /** @param {string} why @param {LivecartError} [error] */
  _final(why, error) {
    this._failPending('closed', why);
    this.emit('close', { code: this.closeCode, reason: why, willReconnect: false, error });
    this._setStatus('closed', { code: this.closeCode, reason: why, error });
  }

  /** @param {number} ms */
  _wait(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._sleep = null;
        resolve(undefined);
      }, ms);
      this._sleep = { timer, wake: resolve };
    });
  }

  /**
   * Close for good (no reconnect). Pending requests are rejected with `closed`.
   * @param {number} [code]
   */
  close(code = 1000) {
    this._closing = true;
    this.status = 'closed'; // asked for: no status event
    if (this._sleep) {
      clearTimeout(this._sleep.timer);
      this._sleep.wake();
      this._sleep = null;
    }
    const ws = this.socket;
    this._failPending('closed', 'closed by the client');
    if (ws) {
      return new Promise((resolve) => {
        const done = () => resolve(undefined);
        const previous = ws.onclose;
        ws.onclose = (/** @type {any} */ ev) => {
          previous?.(ev);
          done();
        };
        try {
          ws.close(code);
        } catch {
          done();
        }
        setTimeout(done, 2000);
      });
    }
    return Promise.resolve();
  }

  // ---- frames ------------------------------------------------------------------------

  /** @param {Message} message */
  _onFrame(message) {
    const type = message?.type;
    if ((type === 'ack' || type === 'error' || type === 'pong') && typeof message.ref === 'string') {
      const pending = this._pending.get(message.ref);
      if (pending) {
        this._pending.delete(message.ref);
        clearTimeout(pending.timer);
        if (type === 'error') pending.reject(LivecartError.fromWire(message));
        else pending.resolve(message);
        return;
      }
    }
    if (type === 'tick') this._onTick(message);
    else if (type === 'notice') {
      this.state.notices.push(message);
      if (this.state.notices.length > 100) this.state.notices.shift();
      this.emit('notice', message);
    } else if (type === 'error') {
      this.emit('error', LivecartError.fromWire(message)); // a push (e.g. banned) or an unmatched answer
    }
  }

  /** @param {Message} welcome */
  _onWelcome(welcome) {
    const resumed = this.offset !== null;
    const recovered = Boolean(welcome.recovered);
    const history = welcome.history ?? [];
    const startOver = !resumed || !recovered;
    if (resumed && !recovered) this.gaps += 1;
    const entries = resumed && recovered ? this._fresh(history) : history;
    this.welcome = welcome;
    this.seq = welcome.seq;
    this.offset = welcome.offset;
    const s = this.state;
    if (startOver) s.comments = [];
    s.room = welcome.room ?? null;
    s.pinned = welcome.room?.pinned ?? null;
    s.product = welcome.product ?? null;
    s.stats = welcome.stats ?? {};
    s.sales = byId(welcome.sales);
    s.drops = byId(welcome.drops);
    s.auctions = byId(welcome.auctions);
    s.polls = byId(welcome.polls);
    this.emit('welcome', welcome);
    this._takeEntries(entries);
    this.emit('state', s);
  }

  /** @param {Message} tick */
  _onTick(tick) {
    if (tick.seq !== this.seq + 1) {
      this.gaps += 1;
      this.emit('gap', { expected: this.seq + 1, got: tick.seq });
    }
    this.seq = tick.seq;
    const entries = tick.entries ? this._fresh(tick.entries) : [];
    this.offset = tick.offset;
    const s = this.state;
    this.sampledOut += tick.sampled_out ?? 0;
    if (tick.stats) s.stats = tick.stats;
    this._takeEntries(entries);
    if (tick.stock) {
      for (const [id, stock] of Object.entries(tick.stock)) s.sales[id] = { ...(s.sales[id] ?? { id }), ...stock };
      this.emit('stock', tick.stock);
    }
    if (tick.drops) {
      for (const [id, counters] of Object.entries(tick.drops)) s.drops[id] = { ...(s.drops[id] ?? { id }), ...counters };
      this.emit('drops', tick.drops);
    }
    if (tick.polls) {
      for (const [id, poll] of Object.entries(tick.polls)) s.polls[id] = { ...(s.polls[id] ?? { id }), ...poll };
      this.emit('polls', tick.polls);
    }
    this.emit('tick', tick);
    this.emit('state', s);
  }

  /** Entries after the held offset; those at or before it are duplicates. @param {Entry[]} entries */
  _fresh(entries) {
    if (this.offset === null) return [...entries];
    const mark = this.offset;
    const fresh = entries.filter((entry) => compareOffsets(entry.id, mark) > 0);
    this.duplicates += entries.length - fresh.length;
    return fresh;
  }

  /** @param {Entry[]} entries */
  _takeEntries(entries) {
    const s = this.state;
    // Every kind handled here but `comment` names what it is about in `ref`, and a pin
    // carries its comment's fields (docs/protocol.md § Room log).
    for (const entry of /** @type {(Entry & {ref: string, user: string, name: string, role: string, text: string})[]} */ (entries)) {
      switch (entry.kind) {
        case 'comment':
          if (!s.comments.some((c) => c.id === entry.id)) {
            s.comments.push(entry);
            if (s.comments.length > MAX_COMMENTS) s.comments.shift();
          }
          break;
        case 'comment_deleted':
          s.comments = s.comments.filter((c) => c.id !== entry.ref);
          if (s.pinned?.id === entry.ref) s.pinned = null;
          break;
        case 'comment_pinned':
          s.pinned = { id: entry.ref, user: entry.user, name: entry.name, role: entry.role, text: entry.text };
          break;
        case 'comment_unpinned':
          s.pinned = null;
          break;
        case 'room_state':
          if (s.room) s.room = { ...s.room, state: entry.state };
          break;
        case 'room_updated': {
          const { id, kind, ts, ref, ...fields } = entry;
          if (s.room) s.room = { ...s.room, ...fields };
          break;
        }
        case 'product_pinned':
          s.product = productCard(entry);
          if (s.room) s.room = { ...s.room, pinned_product: entry.ref };
          break;
        case 'product_unpinned':
          s.product = null;
          if (s.room) s.room = { ...s.room, pinned_product: null };
          break;
        case 'product_updated':
          if (s.product?.id === entry.ref) s.product = productCard(entry);
          break;
        case 'sale_announced': {
          const { id, kind, ts, ref, ...terms } = entry;
          const live = (entry.server_time ?? 0) >= (entry.starts_at ?? 0);
          s.sales[ref] = {
            available: entry.allotment, reserved: 0, sold: 0, units: entry.allotment,
            ...terms, id: ref, state: live ? 'live' : 'scheduled',
          };
          break;
        }
        case 'sale_updated':
          if (s.sales[entry.ref]) s.sales[entry.ref] = { ...s.sales[entry.ref], ends_at: entry.ends_at, units: entry.units };
          break;
        case 'sale_ended':
          if (s.sales[entry.ref]) s.sales[entry.ref] = { ...s.sales[entry.ref], ends_at: entry.ends_at };
          break;
        case 'coupon_dropped': {
          const { id, kind, ts, ref, ...terms } = entry;
          const live = (entry.server_time ?? 0) >= (entry.opens_at ?? 0);
          s.drops[ref] = { remaining: entry.quantity, claimed: 0, ...terms, id: ref, state: live ? 'live' : 'scheduled' };
          break;
        }
        default:
          break;
      }
      this.emit('entry', entry);
    }
  }

  // ---- requests ----------------------------------------------------------------------

  /** A fresh request id (unique across this viewer's connections). */
  newId() {
    return `${this._prefix}${this._nextId++}`;
  }

  /**
   * Send a message with an id (fresh unless given) and resolve with its `ack`/`pong`, or
   * reject with its `error` as a LivecartError (`timeout` after requestTimeoutMs,
   * `disconnected` if the connection drops first, `not_connected` when there is none).
   * @param {Message} message
   * @param {{id?: string, timeoutMs?: number}} [options]
   * @returns {Promise<Message>}
   */
  request(message, { id, timeoutMs = this.requestTimeoutMs } = {}) {
    if (!this.socket) {
      return Promise.reject(new LivecartError('not_connected', 'not connected', { retryable: true }));
    }
    const requestId = id ?? this.newId();
    const framed = { ...message, id: requestId };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this._pending.delete(requestId)) {
          reject(new LivecartError('timeout', `no answer to ${message.type} in ${timeoutMs} ms`, { retryable: true, details: { ref: requestId } }));
        }
      }, timeoutMs);
      this._pending.set(requestId, { message: framed, resolve, reject, timer });
      try {
        this.socket.send(this.codec.encode(framed));
      } catch (err) {
        this._pending.delete(requestId);
        clearTimeout(timer);
        reject(new LivecartError('disconnected', String(err), { retryable: true }));
      }
    });
  }

  /** Send a frame that gets no answer (e.g. a like without id). @param {Message} message */
  send(message) {
    // A socket already closing (readyState 2) would drop the frame without a word.
    if (!this.socket || this.socket.readyState !== OPEN) {
      throw new LivecartError('not_connected', 'not connected', { retryable: true });
    }
    this.socket.send(this.codec.encode(message));
  }

  _resendPending() {
    for (const { message } of this._pending.values()) {
      try {
        this.socket.send(this.codec.encode(message));
      } catch {
        /* the close handler fails it */
      }
    }
  }

  /** @param {string} code @param {string} why */
  _failPending(code, why) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const { reject, timer } of pending) {
      clearTimeout(timer);
      reject(new LivecartError(code, why, { retryable: code === 'disconnected' }));
    }
  }

  // ---- helpers (docs/protocol.md § Client messages) ------------------------------------

  /** Post a comment; resolves with the stored entry. @param {string} text */
  async comment(text) {
    // The entry also arrives in a tick (unless sampled out): `entry` events and
    // state.comments come from ticks only, so it is seen once.
    const ack = await this.request({ type: 'comment', text });
    return ack.entry;
  }

  /**
   * Like `count` times (taps aggregated into one frame, 1-100). Fire and forget unless
   * `confirm`, which waits for the ack.
   * @param {number} [count]
   * @param {{confirm?: boolean}} [options]
   */
  async like(count = 1, { confirm = false } = {}) {
    if (confirm) await this.request({ type: 'like', count });
    else this.send({ type: 'like', count });
  }

  /** Round trip to the engine in ms. */
  async ping() {
    const started = Date.now();
    await this.request({ type: 'ping' });
    return Date.now() - started;
  }

  /** Tell the show's metrics the viewer opened a product card. @param {string} product */
  async click(product) {
    await this.request({ type: 'click', product });
  }

  /**
   * Try to reserve units of a flash sale: `{status: reserved | sold_out | limit_reached |
   * not_started | ended, ..., replayed}`. The same `id` always gets the same answer.
   * @param {string} sale @param {number} [quantity] @param {{id?: string}} [options]
   */
  async grab(sale, quantity = 1, { id } = {}) {
    const ack = await this.request({ type: 'grab', sale, quantity }, { id });
    return { ...ack.result, replayed: Boolean(ack.replayed) };
  }

  /** Give back a reservation (`s1.64`); resolves with its id. @param {string} reservation */
  async release(reservation) {
    const ack = await this.request({ type: 'release', reservation });
    return ack.released;
  }

  /** Queue for a sold-out sale; resolves with the 1-based position. @param {string} sale */
  async waitlist(sale) {
    const ack = await this.request({ type: 'waitlist', sale });
    return ack.position;
  }

  /** Claim one coupon of a drop: `{status: claimed | ..., replayed}`. @param {string} drop @param {{id?: string}} [options] */
  async claim(drop, { id } = {}) {
    const ack = await this.request({ type: 'claim', drop }, { id });
    return { ...ack.result, replayed: Boolean(ack.replayed) };
  }

  /**
   * Bid on an auction (minor units), optionally with a proxy maximum:
   * `{auction, status: leading | outbid, price, leader, min_bid, ends_at}`.
   * @param {string} auction @param {number} amount @param {{max?: number, id?: string}} [options]
   */
  async bid(auction, amount, { max, id } = {}) {
    /** @type {Message} */
    const message = { type: 'bid', auction, amount };
    if (max !== undefined) message.max = max;
    const ack = await this.request(message, { id });
    return ack.result;
  }

  /** Vote for option `option` (0-based) of an open poll: `{poll, option, changed}`. @param {string} poll @param {number} option */
  async vote(poll, option) {
    const ack = await this.request({ type: 'vote', poll, option });
    return ack.result;
  }

  /**
   * Enter a giveaway (over HTTP, with this viewer's token; idempotent):
   * `{giveaway, entered, new, entrants}`.
   * @param {string} giveaway @param {{keyword?: string, fetch?: typeof fetch}} [options]
   */
  async enter(giveaway, { keyword, fetch: fetchImpl = globalThis.fetch } = {}) {
    if (!this.token) throw new LivecartError('auth_required', 'sign in to enter a giveaway');
    const path = `/api/rooms/${encodeURIComponent(this.roomId)}/giveaways/${encodeURIComponent(giveaway)}/enter`;
    const response = await fetchImpl(httpBase(this.url) + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(keyword === undefined ? {} : { keyword }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = body?.error ?? { code: 'http_error', message: `HTTP ${response.status}` };
      if (response.status >= 500 && error.retryable === undefined) error.retryable = true;
      throw LivecartError.fromWire(error, response.status);
    }
    return body;
  }

  /**
   * The next event `name` whose payload matches `where` (for tests and scripts).
   * @param {string} name @param {(payload: any) => boolean} [where] @param {number} [timeoutMs]
   */
  waitFor(name, where = () => true, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new LivecartError('timeout', `no ${name} event in ${timeoutMs} ms`, { retryable: true }));
      }, timeoutMs);
      const off = this.on(name, (/** @type {any} */ payload) => {
        if (!where(payload)) return;
        clearTimeout(timer);
        off();
        resolve(payload);
      });
    });
  }
}

/** @param {{id: string, [field: string]: any}[] | undefined} list */
function byId(list) {
  /** @type {Record<string, {id: string, [field: string]: any}>} */
  const out = {};
  for (const item of Array.isArray(list) ? list : []) out[item.id] = { ...item };
  return out;
}
