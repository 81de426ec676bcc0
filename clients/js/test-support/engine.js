// Test helpers: a live engine (`python -m engine.cli serve` on a free port, with its own
// embedded Redis), tokens minted by `python -m engine.cli token`, a host's HTTP calls,
// and a TCP proxy that can cut connections (a real drop: the client sees 1006).
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

if (typeof globalThis.WebSocket !== 'function') {
  throw new Error(
    'no global WebSocket in this Node (' + process.version + '): run the tests with ' +
      '`node --experimental-websocket --test clients/js/test/` on Node 20 (Node 22+ has it built in)',
  );
}

function python() {
  if (process.env.LIVECART_PYTHON) return process.env.LIVECART_PYTHON;
  const own = path.join(REPO, '.venv/bin/python');
  return existsSync(own) ? own : 'python3';
}

/**
 * Start an engine; resolves with {base, ws, token(room, role, user), api(...), stop()}.
 * @param {Record<string, string>} [settings] LIVECART_* variables for this engine
 */
export async function startEngine(settings = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'livecart-js-'));
  const env = {
    ...process.env,
    LIVECART_SECRET: 'js-sdk-test-secret-0123456789-abcdefghij',
    PYTHONUNBUFFERED: '1',
    ...settings,
  };
  const py = python();
  const child = spawn(
    py,
    ['-m', 'engine.cli', 'serve', '--port', '0', '--workers', '1', '--tick-ms', '50', '--data-dir', dataDir],
    { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine did not start in 30 s:\n${output}`)), 30000);
    const onData = (/** @type {Buffer} */ chunk) => {
      output += chunk.toString();
      const match = output.match(/listening on (http:\/\/[^\s]+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/+$/, ''));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => (output += chunk.toString()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`engine exited (${code}):\n${output}`));
    });
  });
  const token = (/** @type {string} */ room, /** @type {string} */ role, /** @type {string} */ user) =>
    execFileSync(py, ['-m', 'engine.cli', 'token', '--room', room, '--role', role, '--user', user, '--data-dir', dataDir], {
      cwd: REPO,
      env,
    })
      .toString()
      .trim();
  const api = async (/** @type {string} */ method, /** @type {string} */ route, /** @type {string} */ bearer, /** @type {any} */ body) => {
    const response = await fetch(base + route, {
      method,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json().catch(() => null);
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { base, ws: base.replace(/^http/, 'ws'), token, api, stop, output: () => output };
}

/** A live room with a host: creates it and puts it live. */
export async function liveRoom(engine, room) {
  const host = engine.token(room, 'host', `host-${room}`);
  await engine.api('POST', '/api/rooms', host, { id: room, title: `room ${room}` });
  await engine.api('POST', `/api/rooms/${room}/go-live`, host);
  return host;
}

/** A TCP proxy to `target` (host:port) whose connections `cut()` destroys. */
export async function startProxy(targetUrl) {
  const target = new URL(targetUrl);
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = /** @type {net.AddressInfo} */ (server.address()).port;
  return {
    ws: `ws://127.0.0.1:${port}`,
    cut() {
      for (const s of sockets) s.destroy();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

export const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An HS256 JWT signed in Node, as a platform's backend would mint one (docs/security.md §
 * Tokens from your identity service); the engine must list `kid:secret` in
 * LIVECART_JWT_HS256_KEYS. Minting in-process keeps a test of many viewers fast.
 * @param {{kid: string, secret: string}} key
 * @param {{room: string, role: string, sub: string, name?: string}} claims
 */
export function hs256Jwt(key, claims) {
  const now = Math.floor(Date.now() / 1000);
  const part = (/** @type {object} */ value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${part({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${part({ name: claims.sub, iat: now, exp: now + 600, ...claims })}`;
  return `${signingInput}.${createHmac('sha256', key.secret).update(signingInput).digest('base64url')}`;
}

/** A counter's value summed over its series in the engine's /metrics, for `labels` matching. */
export async function metricSum(base, name, labelPattern = /.*/) {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = line.match(/^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/);
    if (match && match[1] === name && labelPattern.test(match[2] ?? '')) sum += Number(match[3]);
  }
  return sum;
}
