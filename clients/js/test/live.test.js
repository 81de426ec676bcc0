// The SDK against a live engine (started here, with its own embedded Redis).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LivecartError, LivecartViewer } from '../src/index.js';
import { liveRoom, sleep, startEngine, startProxy } from '../test-support/engine.js';

/** @type {Awaited<ReturnType<typeof startEngine>>} */
let engine;
/** @type {LivecartViewer[]} */
const viewers = [];

before(async () => {
  engine = await startEngine();
});

after(async () => {
  await Promise.all(viewers.map((v) => v.close()));
  await engine?.stop();
});

function viewer(room, user, options = {}) {
  const v = new LivecartViewer({
    url: engine.ws,
    room,
    token: user ? engine.token(room, 'viewer', user) : undefined,
    requestTimeoutMs: 5000,
    ...options,
  });
  viewers.push(v);
  return v;
}

test('join: welcome, state, and a comment acked then carried by a tick', async () => {
  await liveRoom(engine, 'join');
  const v = viewer('join', 'bob');
  const welcome = await v.connect();
  assert.equal(welcome.type, 'welcome');
  assert.equal(welcome.user, 'bob');
  assert.equal(welcome.role, 'viewer');
  assert.match(welcome.offset, /^\d+-\d+$/);
  assert.equal(v.state.room.id, 'join');
  assert.equal(v.state.room.state, 'live');
  assert.equal(v.offset, welcome.offset);

  const ticked = v.waitFor('tick', (t) => (t.entries ?? []).some((e) => e.text === 'hello there'));
  const entry = await v.comment('hello there');
  assert.equal(entry.kind, 'comment');
  assert.equal(entry.user, 'bob');
  const tick = await ticked;
  assert.equal(tick.entries.find((e) => e.text === 'hello there').id, entry.id);
  assert.ok(v.state.comments.some((c) => c.id === entry.id));
  assert.equal(v.offset, tick.offset);
  assert.ok((await v.ping()) >= 0);
  await v.like(3, { confirm: true });
  assert.equal(v.gaps, 0);
});

test('a host creates a sale: stock arrives in ticks, a grab is answered, a release too', async () => {
  const host = await liveRoom(engine, 'sale');
  const v = viewer('sale', 'carol');
  await v.connect();
  await engine.api('POST', '/api/rooms/sale/products', host, {
    title: 'Canvas sneaker',
    currency: 'USD',
    skus: [{ sku: 'SNK-42', list_price: 9900, attrs: { size: '42' } }],
  });
  const announced = v.waitFor('entry', (e) => e.kind === 'sale_announced');
  const sale = await engine.api('POST', '/api/rooms/sale/sales', host, { sku: 'SNK-42', allotment: 5, per_user_limit: 2 });
  assert.equal((await announced).ref, sale.id);
  assert.equal(v.state.sales[sale.id].units, 5);

  const stockAfterGrab = v.waitFor('stock', (stock) => stock[sale.id]?.reserved === 1);
  const answer = await v.grab(sale.id, 1);
  assert.equal(answer.status, 'reserved');
  assert.equal(answer.replayed, false);
  assert.match(answer.reservation, /^s\d+\.\d+$/);
  const stock = await stockAfterGrab;
  assert.equal(stock[sale.id].available, 4);
  assert.equal(v.state.sales[sale.id].available, 4);
  assert.equal(v.state.sales[sale.id].state, 'live');

  // Same id, same answer.
  const again = await v.grab(sale.id, 1, { id: 'fixed-grab-1' });
  const replay = await v.grab(sale.id, 1, { id: 'fixed-grab-1' });
  assert.equal(replay.replayed, true);
  assert.equal(replay.status, again.status);

  assert.equal(await v.release(answer.reservation), answer.reservation);
});

test('an invalid frame gets a typed error; a refused join rejects without reconnecting', async () => {
  await liveRoom(engine, 'errs');
  const v = viewer('errs', 'dave');
  await v.connect();
  await assert.rejects(v.grab('bogus'), (err) => {
    assert.ok(err instanceof LivecartError);
    assert.equal(err.code, 'invalid_field');
    assert.equal(err.retryable, false);
    assert.equal(err.details.field, 'sale');
    return true;
  });
  await assert.rejects(v.request({ type: 'nope' }), { code: 'unknown_type' });
  await assert.rejects(v.grab('s999'), { code: 'sale_not_found' });
  assert.ok(v.connected, 'an error does not close the connection');

  const lost = viewer('no-such-room', null);
  await assert.rejects(lost.connect(), { code: 'room_not_found', retryable: false });
  const wrong = new LivecartViewer({ url: engine.ws, room: 'errs', token: engine.token('other', 'viewer', 'eve') });
  viewers.push(wrong);
  await assert.rejects(wrong.connect(), { code: 'token_wrong_room' });
  assert.equal(wrong.connected, false);
});

test('resume after the connection is cut: comments posted meanwhile arrive exactly once', async () => {
  await liveRoom(engine, 'resume');
  const proxy = await startProxy(engine.base);
  try {
    // random: () => 1 makes the backoff wait its ceiling (500 ms): long enough to post
    // comments while this viewer is away.
    const v = viewer('resume', 'frank', { url: proxy.ws, backoff: { baseMs: 500, maxMs: 500 }, random: () => 1 });
    // A host posts (hosts are exempt from the comment rate limit).
    const other = new LivecartViewer({ url: engine.ws, room: 'resume', token: engine.token('resume', 'host', 'gina') });
    viewers.push(other);
    await v.connect();
    await other.connect();
    /** @type {Map<string, number>} */
    const seen = new Map();
    v.on('entry', (e) => e.kind === 'comment' && seen.set(e.text, (seen.get(e.text) ?? 0) + 1));

    const seenBefore1 = v.waitFor('entry', (e) => e.text === 'before-1'); // listening first
    await other.comment('before-1');
    await seenBefore1;
    await other.comment('before-2'); // may or may not have reached v before the cut

    const closed = v.waitFor('close');
    const reconnected = v.waitFor('reconnect', () => true, 10000);
    proxy.cut();
    const close = await closed;
    assert.equal(close.code, 1006);
    assert.equal(close.willReconnect, true);
    const during = ['during-1', 'during-2', 'during-3'];
    for (const text of during) await other.comment(text);
    const { recovered } = await reconnected;
    assert.equal(recovered, true);
    const seenAfter1 = v.waitFor('entry', (e) => e.text === 'after-1'); // listening first
    await other.comment('after-1');
    await seenAfter1;
    for (const text of ['before-1', 'before-2', ...during, 'after-1']) {
      assert.equal(seen.get(text), 1, `${text} seen ${seen.get(text)} times`);
    }
    assert.equal(v.gaps, 0);
    assert.equal(v.duplicates, 0);
    assert.equal(v.reconnects, 1);
    assert.deepEqual(
      v.state.comments.map((c) => c.text),
      ['before-1', 'before-2', ...during, 'after-1'],
    );
  } finally {
    await proxy.close();
  }
});

test('reconnect after a retryable close code (3001, echoed by the engine), not after close()', async () => {
  await liveRoom(engine, 'again');
  const v = viewer('again', 'hank', { backoff: { baseMs: 50, maxMs: 100 } });
  await v.connect();
  const closed = v.waitFor('close');
  const reconnected = v.waitFor('reconnect');
  v.socket.close(3001, 'test'); // the engine echoes the code: what the client sees is 3001
  assert.deepEqual({ ...(await closed), reason: undefined }, { code: 3001, reason: undefined, willReconnect: true });
  assert.equal((await reconnected).recovered, true);
  assert.ok(v.connected);
  await v.comment('still here');

  const final = v.waitFor('close');
  await v.close();
  assert.equal((await final).willReconnect, false);
  await sleep(300);
  assert.equal(v.connected, false);
  await assert.rejects(v.comment('gone'), { code: 'not_connected' });
});

test('msgpack (a codec passed in): join, comment, tick, typed error', async () => {
  const msgpack = await import('../test-support/msgpack.js');
  await liveRoom(engine, 'packed');
  const v = viewer('packed', 'ivy', { codec: { encode: msgpack.encode, decode: msgpack.decode } });
  const welcome = await v.connect();
  assert.equal(v.socket.protocol, 'livecart.v1.msgpack');
  assert.equal(welcome.user, 'ivy');
  const ticked = v.waitFor('entry', (e) => e.text === 'packed hello');
  const entry = await v.comment('packed hello');
  assert.equal((await ticked).id, entry.id);
  await assert.rejects(v.grab('bogus'), { code: 'invalid_field' });
});
