// The examples of docs/sdk-js.md run as written against a live engine: the "Connect" block
// and the `start()`/`status` block. Only the engine's URL and the room id are swapped in
// ('https://live.example' and 'demo'); the page functions they call are recorded. And
// docs/security.md's Node backend minting a viewer JWT with `jose`: the engine accepts it.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { SignJWT, importPKCS8 } from 'jose';
import { LivecartError, LivecartViewer } from '../src/index.js';
import { REPO, liveRoom, startEngine } from '../test-support/engine.js';

const DOC = readFileSync(path.join(REPO, 'docs/sdk-js.md'), 'utf8');
const SECURITY = readFileSync(path.join(REPO, 'docs/security.md'), 'utf8');
const SIGNING = generateKeyPairSync('rsa', { modulusLength: 2048 });
const keyDir = mkdtempSync(path.join(tmpdir(), 'livecart-doc-key-'));
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
/** @type {Awaited<ReturnType<typeof startEngine>>} */
let engine;
/** @type {LivecartViewer[]} */
const made = [];

/** The first ```js block after the line `after`. @param {string} after */
function example(after, doc = DOC) {
  const from = doc.indexOf(after);
  assert.ok(from >= 0, `the doc has no "${after}"`);
  const match = doc.slice(from).match(/```js\n([\s\S]*?)```/);
  assert.ok(match, `no js example after "${after}"`);
  return match[1];
}

/** Runs `code` with the engine and `room` swapped in; resolves with its locals' record. */
async function run(code, room, scope) {
  const swapped = code.replaceAll("'https://live.example'", JSON.stringify(engine.base)).replaceAll("'demo'", JSON.stringify(room));
  assert.notEqual(swapped, code, 'the example names the engine or the room to swap');
  // A class that records every viewer the example makes, so the test can close them.
  class Recorded extends LivecartViewer {
    constructor(/** @type {any} */ options) {
      super(options);
      made.push(this);
    }
  }
  const names = Object.keys(scope);
  const body = `${swapped}\nreturn { viewer, welcome };`;
  return new AsyncFunction('LivecartViewer', 'LivecartError', ...names, body)(Recorded, LivecartError, ...Object.values(scope));
}

before(async () => {
  // The public half of the backend's signing key, as docs/security.md configures it.
  const publicKey = path.join(keyDir, 'signing.pub.pem');
  writeFileSync(publicKey, SIGNING.publicKey.export({ type: 'spki', format: 'pem' }));
  engine = await startEngine({ LIVECART_JWT_PUBLIC_KEY_FILE: publicKey, LIVECART_JWT_AUDIENCE: 'livecart' });
});

after(async () => {
  await Promise.all(made.map((v) => v.close()));
  await engine?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

test('the Connect example joins, and its listeners get entries and state', async () => {
  await liveRoom(engine, 'doc-connect');
  const rendered = [];
  const updates = [];
  const { viewer, welcome } = await run(example('## Connect'), 'doc-connect', {
    token: engine.token('doc-connect', 'viewer', 'dana'),
    render: (/** @type {any} */ entry) => rendered.push(entry.text),
    update: (/** @type {any} */ state) => updates.push(state),
    showOffline: () => assert.fail('offline'),
  });
  assert.equal(welcome.type, 'welcome');
  assert.equal(welcome.user, 'dana');
  assert.ok(updates.length >= 1);
  // Listening first: the tick carrying the comment may arrive right behind its ack.
  const carried = viewer.waitFor('entry', (/** @type {any} */ e) => e.text === 'from the docs');
  await viewer.comment('from the docs');
  await carried;
  assert.deepEqual(rendered, ['from the docs']);
});

test('the start() example shows live, then closed with the refusal in the badge', async () => {
  await liveRoom(engine, 'doc-start');
  const code = example('**Pages and apps that show the connection');
  const badge = { dataset: {}, textContent: '' };
  const { viewer, welcome } = await run(`const viewer = new LivecartViewer({ url: 'https://live.example', room: 'demo', token });\n${code}`, 'doc-start', {
    token: engine.token('doc-start', 'viewer', 'eve'),
    badge,
  });
  assert.equal(welcome.type, 'welcome');
  assert.equal(badge.dataset.state, 'live');
  await viewer.close();
  // A token for another room: refused, never retried; the badge says why.
  const refused = await run(`const viewer = new LivecartViewer({ url: 'https://live.example', room: 'demo', token });\n${code}`, 'doc-start', {
    token: engine.token('elsewhere', 'viewer', 'eve'),
    badge,
  });
  assert.equal(refused.welcome, null);
  assert.equal(badge.dataset.state, 'closed');
  assert.match(badge.textContent, /room/);
});

test("security.md's Node backend mints a JWT (jose, RS256) the engine accepts", async () => {
  await liveRoom(engine, 'doc-jwt');
  const code = example('**Minting a viewer token in your backend.** Node', SECURITY)
    .replace(/^import .* from "jose";\n/m, '') // passed in below
    .replace('export async function', 'async function');
  const pem = SIGNING.privateKey.export({ type: 'pkcs8', format: 'pem' });
  const viewerToken = await new AsyncFunction('SignJWT', 'importPKCS8', 'process', `${code}\nreturn viewerToken;`)(
    SignJWT,
    importPKCS8,
    { env: { LIVECART_SIGNING_KEY_PEM: pem } },
  );
  const token = await viewerToken({ id: 'shop-user-42', displayName: 'Kim' }, 'doc-jwt');
  const viewer = new LivecartViewer({ url: engine.ws, room: 'doc-jwt', token });
  made.push(viewer);
  const welcome = await viewer.connect();
  assert.equal(welcome.user, 'shop-user-42');
  assert.equal(welcome.role, 'viewer');
  await viewer.comment('signed by my backend');
});
