// A reconnection storm against a live engine that limits handshakes (docs/deploy.md,
// LIVECART_HANDSHAKES_PER_S): the engine sheds what it cannot take (503 at the upgrade, which
// a WebSocket sees as a close before the welcome), and every viewer started with start()
// still gets in through the jittered backoff; then every viewer drops at once and each
// resumes with nothing missed or repeated.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LivecartViewer } from '../src/index.js';
import { hs256Jwt, liveRoom, metricSum, startEngine } from '../test-support/engine.js';

const VIEWERS = 60; // three times the engine's burst of handshakes
const KEY = { kid: 'storm-1', secret: 'storm-test-hs256-secret-0123456789abcdef' };
/** @type {Awaited<ReturnType<typeof startEngine>>} */
let engine;
/** @type {LivecartViewer[]} */
const viewers = [];

before(async () => {
  // 10 handshakes a second, bursts of 20, per process and per IP (every viewer is 127.0.0.1).
  engine = await startEngine({
    LIVECART_HANDSHAKES_PER_S: '10',
    LIVECART_HANDSHAKES_PER_IP_PER_S: '10',
    LIVECART_JWT_HS256_KEYS: `${KEY.kid}:${KEY.secret}`,
  });
});

after(async () => {
  await Promise.all(viewers.map((v) => v.close()));
  await engine?.stop();
});

test('a storm of joins is shed and every viewer still gets in; then all drop and resume', { timeout: 90000 }, async () => {
  const room = 'storm';
  const host = new LivecartViewer({ url: engine.ws, room, token: await liveRoomToken() });
  viewers.push(host);
  /** @type {Map<LivecartViewer, string[]>} */
  const statuses = new Map();
  /** @type {Map<LivecartViewer, Map<string, number>>} */
  const seen = new Map();
  for (let n = 0; n < VIEWERS; n++) {
    const v = new LivecartViewer({
      url: engine.ws,
      room,
      token: hs256Jwt(KEY, { room, role: 'viewer', sub: `fan-${n}` }),
      backoff: { baseMs: 100, maxMs: 1000 },
    });
    viewers.push(v);
    statuses.set(v, []);
    seen.set(v, new Map());
    v.on('status', (/** @type {{status: string}} */ s) => statuses.get(v)?.push(s.status));
    v.on('entry', (/** @type {{kind: string, text: string}} */ e) => {
      const counts = /** @type {Map<string, number>} */ (seen.get(v));
      if (e.kind === 'comment') counts.set(e.text, (counts.get(e.text) ?? 0) + 1);
    });
  }
  await host.start();
  const fans = viewers.slice(1);
  const welcomes = await Promise.all(fans.map((v) => v.start()));
  assert.ok(welcomes.every((w) => w?.type === 'welcome'), 'every viewer joined');
  const shed = await metricSum(engine.base, 'livecart_handshakes_refused_total', /reason="rate"/);
  assert.ok(shed >= 10, `only ${shed} handshakes were shed: is the limit applied?`);
  assert.ok(fans.every((v) => v.status === 'live'));
  // A first join that was shed shows as retrying (reconnecting) until it gets in.
  assert.ok(fans.every((v) => /^connecting,(reconnecting,)?live$/.test(statuses.get(v)?.join() ?? '')));
  const joinStatuses = new Map(fans.map((v) => [v, statuses.get(v)?.length ?? 0]));

  const before = Promise.all(fans.map((v) => v.waitFor('entry', (e) => e.text === 'before', 20000)));
  await host.comment('before');
  await before;
  // Everyone drops at once (a stream hiccup) and comes back, shed again where needed.
  const resumed = fans.map((v) => v.waitFor('reconnect', () => true, 60000));
  for (const v of fans) v.drop({ holdMs: 200 });
  await host.comment('during');
  const recovered = await Promise.all(resumed);
  const shedAgain = (await metricSum(engine.base, 'livecart_handshakes_refused_total', /reason="rate"/)) - shed;
  assert.ok(shedAgain > 0, 'the reconnections were shed too');
  assert.ok(recovered.every((r) => r.recovered === true), 'every resume recovered the log');
  const after = Promise.all(fans.map((v) => v.waitFor('entry', (e) => e.text === 'after', 20000)));
  await host.comment('after');
  await after;
  for (const v of fans) {
    const counts = seen.get(v);
    for (const text of ['during', 'after']) assert.equal(counts?.get(text), 1, `${text} seen ${counts?.get(text)} times`);
    assert.equal(v.gaps, 0);
    assert.equal(v.duplicates, 0);
    assert.equal(v.reconnects, 1);
    assert.deepEqual(statuses.get(v)?.slice(joinStatuses.get(v)), ['reconnecting', 'live']);
  }

  async function liveRoomToken() {
    await liveRoom(engine, room);
    return engine.token(room, 'host', 'host-storm');
  }
});
