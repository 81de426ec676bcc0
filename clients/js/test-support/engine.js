// Test helpers: a live engine (`python -m engine.cli serve` on a free port, with its own
// embedded Redis), tokens minted by `python -m engine.cli token`, a host's HTTP calls,
// and a TCP proxy that can cut connections (a real drop: the client sees 1006).
import { spawn, execFileSync } from 'node:child_process';
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
  return existsSync(own) ? own : '/work/main/.venv/bin/python';
}

/** Start an engine; resolves with {base, ws, token(room, role, user), api(...), stop()}. */
export async function startEngine() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'livecart-js-'));
  const env = { ...process.env, LIVECART_SECRET: 'js-sdk-test-secret-0123456789-abcdefghij', PYTHONUNBUFFERED: '1' };
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
