// The SDK's logic without an engine: backoff, close codes, offsets, codecs, and the
// reconnect loop against a scripted fake WebSocket (shed with retry_after_ms, refusals,
// a 1001 with a request in flight; start() and its status events, drop({holdMs})).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Backoff, LivecartError, LivecartViewer, compareOffsets, jsonCodec, resolveCodec, roomUrl, shedDelayMs, shouldReconnect,
} from '../src/index.js';

test('shouldReconnect follows docs/protocol.md § Close codes', () => {
  for (const code of [undefined, null, 1001, 1005, 1006, 1011, 1012, 1013, 1014, 3000, 3001, 3002, 3003, 3499]) {
    assert.equal(shouldReconnect(code), true, String(code));
  }
  for (const code of [1000, 1002, 1007, 1009, 3500, 3501, 3502, 3503, 3504, 3999, 4000]) {
    assert.equal(shouldReconnect(code), false, String(code));
  }
});

test('backoff: full jitter under ceilings 250, 500, 1000 ... capped at 15000 ms; reset', () => {
  const b = new Backoff({ random: () => 1 });
  const ceilings = Array.from({ length: 9 }, () => b.next());
  assert.deepEqual(ceilings, [250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  b.reset();
  assert.equal(b.next(), 250);
  const limited = new Backoff({ maxAttempts: 1, random: () => 0.5 });
  assert.equal(limited.next(), 125);
  assert.equal(limited.next(), null);
  assert.equal(shedDelayMs(1000, () => 0), 1000);
  assert.equal(shedDelayMs(1000, () => 1), 1500);
});

test('offsets compare numerically; urls; codecs', () => {
  assert.ok(compareOffsets('1732212345678-10', '1732212345678-9') > 0);
  assert.ok(compareOffsets('999-0', '1000-0') < 0);
  assert.equal(compareOffsets('5-1', '5-1'), 0);
  assert.equal(roomUrl('http://h:1', 'demo'), 'ws://h:1/ws/demo');
  assert.equal(roomUrl('https://h/', 'demo'), 'wss://h/ws/demo');
  assert.equal(roomUrl('ws://h/ws/demo', 'demo'), 'ws://h/ws/demo');
  assert.deepEqual(jsonCodec.decode(new TextEncoder().encode('{"a":1}').buffer), { a: 1 });
  const fake = { encode: (v) => new TextEncoder().encode(JSON.stringify(v)), decode: (b) => JSON.parse(new TextDecoder().decode(b)) };
  const codec = resolveCodec(fake);
  assert.equal(codec.subprotocol, 'livecart.v1.msgpack');
  assert.equal(codec.binary, true);
  assert.throws(() => resolveCodec({ encode: 1 }), TypeError);
});

// ---- a scripted fake WebSocket -----------------------------------------------------------

/** Each connection runs the next script: (socket, hello) => void. */
function fakeWebSocket(scripts) {
  const opened = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.script = scripts.shift();
      opened.push(this);
      setTimeout(() => this.onopen?.(), 1);
    }
    send(data) {
      const message = JSON.parse(data);
      this.sent.push(message);
      if (message.type === 'hello') setTimeout(() => this.script(this, message), 1);
      else this.onrequest?.(message);
    }
    get readyState() {
      return this.closed ? 2 : 1; // CLOSING once dropped, until the close event
    }
    push(message) {
      this.onmessage?.({ data: JSON.stringify(message) });
    }
    drop(code, reason = '') {
      if (this.closed) return;
      this.closed = true;
      setTimeout(() => this.onclose?.({ code, reason }), 1);
    }
    close(code = 1000) {
      this.drop(code);
    }
  }
  return { FakeSocket, opened };
}

const welcome = (offset, seq = 0, extra = {}) => ({ type: 'welcome', user: 'u', role: 'viewer', room: { id: 'r', state: 'live' }, seq, offset, history: [], stats: {}, sales: [], drops: [], ...extra });

test('a shed refusal (retry_after_ms) is waited out with jitter on top, then the client resumes', async () => {
  const { FakeSocket, opened } = fakeWebSocket([
    (ws) => {
      ws.push(welcome('10-0', 4));
      ws.push({ type: 'tick', seq: 5, t: 1, offset: '11-0', entries: [{ id: '11-0', kind: 'comment', text: 'a' }] });
      ws.drop(1006);
    },
    (ws) => {
      ws.push({ type: 'error', code: 'unavailable', message: 'busy', retryable: true, details: { retry_after_ms: 300 } });
      ws.drop(3002);
    },
    (ws, hello) => {
      assert.equal(hello.since, '11-0');
      ws.push(welcome('12-0', 9, { recovered: true, history: [{ id: '11-0', kind: 'comment', text: 'a' }, { id: '12-0', kind: 'comment', text: 'b' }] }));
    },
  ]);
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket, backoff: { baseMs: 10, maxMs: 10 }, random: () => 0 });
  const texts = [];
  v.on('entry', (e) => texts.push(e.text));
  const reconnected = v.waitFor('reconnect', () => true, 5000);
  await v.connect();
  const refusedAt = await new Promise((resolve) => {
    const timer = setInterval(() => opened.length >= 2 && opened[1].closed && (clearInterval(timer), resolve(Date.now())), 2);
  });
  await reconnected;
  assert.ok(Date.now() - refusedAt >= 290, `waited ${Date.now() - refusedAt} ms`);
  assert.equal(opened.length, 3);
  assert.deepEqual(opened[0].protocols, ['livecart.v1.json']);
  assert.deepEqual(texts, ['a', 'b'], 'the replayed duplicate is left out');
  assert.equal(v.duplicates, 1);
  assert.equal(v.offset, '12-0');
  assert.equal(v.seq, 9);
  await v.close();
});

test('a non-retryable refusal during reconnecting ends it (close event with the error)', async () => {
  const { FakeSocket } = fakeWebSocket([
    (ws) => {
      ws.push(welcome('1-0'));
      ws.drop(1011);
    },
    (ws) => {
      ws.push({ type: 'error', code: 'token_expired', message: 'token expired', retryable: false });
      ws.drop(3500);
    },
  ]);
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket, backoff: { baseMs: 5 } });
  const final = v.waitFor('close', (c) => !c.willReconnect);
  const errors = [];
  v.on('error', (e) => errors.push(e));
  await v.connect();
  const close = await final;
  assert.equal(close.error.code, 'token_expired');
  assert.equal(errors[0].code, 'token_expired');
  assert.equal(v.connected, false);
});

test('a request unanswered at 1001 is sent again with its id once resumed; a tick gap is counted', async () => {
  const { FakeSocket } = fakeWebSocket([
    (ws) => {
      ws.push(welcome('1-0', 0));
      ws.onrequest = () => ws.drop(1001, 'server shutting down');
    },
    (ws) => {
      ws.push(welcome('1-0', 7, { recovered: true }));
      ws.onrequest = (m) => ws.push({ type: 'ack', ref: m.id, result: { status: 'reserved', reservation: 's1.1' } });
      ws.push({ type: 'tick', seq: 9, t: 1, offset: '1-0' }); // 8 is missing
    },
  ]);
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket, backoff: { baseMs: 5 } });
  await v.connect();
  const answer = await v.grab('s1', 1, { id: 'g-1' });
  assert.equal(answer.status, 'reserved');
  assert.equal(v.gaps, 1);
  await v.close();
});

test('requests time out with a typed error', async () => {
  const { FakeSocket } = fakeWebSocket([(ws) => ws.push(welcome('1-0'))]);
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket });
  await v.connect(); // with the default timeout: a loaded machine may take > 50 ms to welcome
  v.requestTimeoutMs = 50;
  await assert.rejects(v.comment('x'), (err) => err instanceof LivecartError && err.code === 'timeout' && err.retryable);
  await v.close();
});

// ---- start(), status events, drop() --------------------------------------------------------

/** Every `status` event the viewer emits from now on. */
function statusEvents(viewer) {
  const events = [];
  viewer.on('status', (event) => events.push(event));
  return events;
}

test('start() retries a first connection that closes before the welcome: connecting, reconnecting, live', async () => {
  const { FakeSocket, opened } = fakeWebSocket([
    (ws) => ws.drop(1006), // the engine went away before it welcomed anyone
    (ws, hello) => {
      assert.equal(hello.since, undefined, 'a first join, not a resume');
      ws.push(welcome('3-0', 2));
    },
  ]);
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket, backoff: { baseMs: 5 }, random: () => 0 });
  const seen = statusEvents(v);
  const joined = await v.start();
  assert.equal(joined.type, 'welcome');
  assert.equal(joined.offset, '3-0');
  assert.equal(opened.length, 2);
  assert.deepEqual(seen.map((e) => e.status), ['connecting', 'reconnecting', 'live']);
  assert.equal(v.status, 'live');
  assert.equal(v.connected, true);
  v.socket.drop(1006); // closing: a frame sent now would be lost, so send refuses it
  assert.throws(() => v.send({ type: 'like', count: 1 }), { code: 'not_connected' });
  await v.close();
  assert.deepEqual(seen.map((e) => e.status).slice(3), [], 'close() reports no status');
});

test('start() after a refusal (token_invalid): status closed with the error, resolves null, no retry', async () => {
  const { FakeSocket, opened } = fakeWebSocket([
    (ws) => {
      ws.push({ type: 'error', code: 'token_invalid', message: 'bad token', retryable: false });
      ws.drop(3500);
    },
    () => assert.fail('a refusal is not retried'),
  ]);
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket, backoff: { baseMs: 5 }, random: () => 0 });
  const seen = statusEvents(v);
  const errors = [];
  v.on('error', (e) => errors.push(e));
  const closes = [];
  v.on('close', (c) => closes.push(c));
  assert.equal(await v.start(), null);
  assert.deepEqual(seen.map((e) => e.status), ['connecting', 'closed']);
  assert.ok(seen.at(-1).error instanceof LivecartError);
  assert.equal(seen.at(-1).error.code, 'token_invalid');
  assert.equal(seen.at(-1).error.retryable, false);
  assert.deepEqual(errors.map((e) => e.code), ['token_invalid']);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].willReconnect, false);
  assert.equal(closes[0].error.code, 'token_invalid');
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(opened.length, 1);
  assert.equal(v.status, 'closed');
});

test('drop({holdMs}) reconnects no sooner than holdMs and resumes with since', async () => {
  const holdMs = 200;
  const helloAt = [];
  const { FakeSocket, opened } = fakeWebSocket([
    (ws) => ws.push(welcome('7-0', 3)),
    (ws, hello) => {
      helloAt.push(Date.now());
      assert.equal(hello.since, '7-0');
      ws.push(welcome('8-0', 5, { recovered: true, history: [{ id: '8-0', kind: 'comment', ts: 1, text: 'missed' }] }));
    },
  ]);
  // random 0: the backoff alone would reconnect at once, so any wait is the hold's
  const v = new LivecartViewer({ url: 'ws://x', room: 'r', WebSocket: FakeSocket, backoff: { baseMs: 5 }, random: () => 0 });
  await v.start();
  const seen = statusEvents(v);
  const texts = [];
  v.on('entry', (e) => texts.push(e.text));
  const reconnected = v.waitFor('reconnect', () => true, 5000);
  const droppedAt = Date.now();
  v.drop({ holdMs });
  const resumed = await reconnected;
  assert.ok(helloAt[0] - droppedAt >= holdMs, `reconnected after ${helloAt[0] - droppedAt} ms`);
  assert.equal(opened.length, 2);
  assert.equal(opened[0].closed, true);
  assert.deepEqual(resumed, { recovered: true, offset: '8-0' });
  assert.deepEqual(texts, ['missed']);
  assert.deepEqual(seen.map((e) => e.status), ['reconnecting', 'live']);
  assert.equal(seen[0].code, 3000, 'drop() closes as a network failure would, in the resume range');
  assert.equal(v.reconnects, 1);
  await v.close();
});
