// The browser tests' harness: starts the real chatbox binary (the
// all-in-one, or gateways and workers on Redis, NATS, the MongoDB and S3
// stand-ins), the project's mock LLM, and Debian's Chromium through
// playwright-core; collects page errors; saves screenshots as artifacts.
//
// Environment: CHATBOX_BIN (default: the debug binary in CARGO_TARGET_DIR,
// or ~/.cache/chatbox/target), MOCK_LLM_BIN (default: `mock-llm` next to
// CHATBOX_BIN, where building the workspace puts it; crate tools/mock-llm),
// CHROMIUM (default /usr/bin/chromium),
// axe-core (npm, pinned in package.json) for the accessibility audits,
// CHATBOX_BROWSER_ARTIFACTS (default <repo>/target/browser-artifacts), and
// for the scaled stack the CHATBOX_TEST_* variables scripts/test.sh
// exports (Redis, NATS, MongoDB, S3).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir, homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../../..');

const SECRET = 'browser-test-secret-0123456789-abcdefghijkl';
const ENCRYPTION_KEY = 'YnJvd3Nlci10ZXN0LWVuY3J5cHRpb24ta2V5LTMyYnk=';

/** The chatbox binary under test. */
export function binary() {
  if (process.env.CHATBOX_BIN) return process.env.CHATBOX_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache/chatbox/target');
  return join(target, 'debug/chatbox');
}

/** The mock LLM binary (tools/mock-llm). */
export function mockBinary() {
  if (process.env.MOCK_LLM_BIN) return process.env.MOCK_LLM_BIN;
  const bin = join(dirname(binary()), 'mock-llm');
  if (!existsSync(bin)) {
    throw new Error(`no mock-llm at ${bin}: build it with \`cargo build -p chatbox-mock-llm\` or set MOCK_LLM_BIN`);
  }
  return bin;
}

/** Where screenshots and logs go. */
export function artifactsDir() {
  const dir = process.env.CHATBOX_BROWSER_ARTIFACTS || join(repoRoot, 'target/browser-artifacts');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A fresh scratch folder for one stack. */
function scratch(name) {
  return mkdtempSync(join(tmpdir(), `chatbox-browser-${name}-`));
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `url` until it answers `status`, or fails after `timeoutMs`. */
async function waitFor(url, status, timeoutMs, what, proc) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) {
      throw new Error(`${what} exited (code ${proc.exitCode}); see ${proc.logPath}`);
    }
    try {
      const answer = await fetch(url);
      if (answer.status === status) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not answer ${url} within ${timeoutMs} ms; see ${proc?.logPath}`);
    await sleep(100);
  }
}

/** Every process started here, killed when the test process exits. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts `chatbox <args>` (or `program <args>`) with `env`, its output in `<dir>/<name>.log`. */
function run(name, dir, args, env, program = binary()) {
  const logPath = join(dir, `${name}.log`);
  const log = createWriteStream(logPath, { flags: 'a' });
  const child = spawn(program, args, {
    env: { PATH: process.env.PATH, CHATBOX_LOG_FORMAT: 'text', RUST_LOG: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  child.logPath = logPath;
  running.add(child);
  child.on('exit', () => running.delete(child));
  return child;
}

/** Stops a process with SIGTERM (SIGKILL after 10 s) and waits for it. */
function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(force);
      done();
    });
    child.kill('SIGTERM');
  });
}

/** Mints a token with the tests' secret. */
async function mint(env, { sub, name, admin = false, ttl = '2h' }) {
  const args = ['token', '--sub', sub, '--ttl', ttl];
  if (name) args.push('--name', name);
  if (admin) args.push('--role', 'admin');
  return new Promise((resolveToken, reject) => {
    const child = spawn(binary(), args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolveToken(out.trim()) : reject(new Error(`chatbox token: ${err}`))));
  });
}

/** Starts the project's mock LLM; returns its address and a stopper. */
export async function startMock(dir) {
  const addr = `127.0.0.1:${await freePort()}`;
  const proc = run('mock-llm', dir, ['--listen', addr, '--chunks', '12', '--chunk-delay', '40'], {}, mockBinary());
  await waitFor(`http://${addr}/mock/stats`, 200, 20_000, 'mock-llm', proc);
  return {
    addr,
    stats: async () => (await fetch(`http://${addr}/mock/stats`)).json(),
    stop: () => stopProcess(proc),
  };
}

/** The mock providers: `mock-gpt` (OpenAI format, default, sees images,
 *  transcribes voice), `mock-claude` (Anthropic format) and `mock-dify`
 *  (a Dify app: moderation, agents at work). */
function providersConfig(dir, mockAddr) {
  const path = join(dir, 'providers.toml');
  writeFileSync(
    path,
    `[[chatbox.llm.providers]]
id = "mock-gpt"
name = "Mock GPT"
type = "openai"
endpoint = "http://${mockAddr}/v1"
model = "gpt-mock"
vision = true
transcription_model = "whisper-1"

[[chatbox.llm.providers]]
id = "mock-claude"
name = "Mock Claude"
type = "anthropic"
endpoint = "http://${mockAddr}/v1"
model = "claude-mock"

[[chatbox.llm.providers]]
id = "mock-dify"
name = "Mock Dify"
type = "dify"
endpoint = "http://${mockAddr}/v1"
`,
  );
  return path;
}

/** `CHATBOX_WEB_DIR` passed on when set: the pages served from disk. */
function pagesFolder() {
  return process.env.CHATBOX_WEB_DIR ? { CHATBOX_WEB_DIR: process.env.CHATBOX_WEB_DIR } : {};
}

/** A unique user id, so runs never meet each other's sessions. */
export function uniqueId(prefix) {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * The all-in-one on embedded defaults with the two mock providers and
 * files on local disk (same origin as the page). `stop()` then `start()`
 * restarts it on the same port and data; tokens stay valid.
 */
export async function startAllInOne(options = {}) {
  const dir = scratch('aio');
  const mock = await startMock(dir);
  try {
    return await allInOne(dir, mock, options);
  } catch (e) {
    await mock.stop();
    throw e;
  }
}

async function allInOne(dir, mock, { env: extraEnv = {} }) {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = {
    JWT_SECRET: SECRET,
    CHATBOX_CONFIG: providersConfig(dir, mock.addr),
    ...pagesFolder(),
    ...extraEnv,
  };
  const dataDir = join(dir, 'data');
  let proc = null;
  const start = async () => {
    proc = run('all-in-one', dir, ['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], env);
    try {
      await waitFor(`${baseUrl}/chat/readyz`, 200, 30_000, 'the all-in-one', proc);
    } catch (e) {
      await stopProcess(proc);
      throw e;
    }
  };
  await start();
  const token = (who) => mint(env, who);
  const userToken = await token({ sub: uniqueId('user'), name: 'Test User' });
  const adminToken = await token({ sub: uniqueId('admin'), name: 'Ada Admin', admin: true });
  return {
    baseUrl,
    chatUrl: `${baseUrl}/chat/#token=${userToken}`,
    adminUrl: `${baseUrl}/chat/admin/#token=${adminToken}`,
    userToken,
    adminToken,
    token,
    dataDir,
    dir,
    mock,
    start,
    stop: () => stopProcess(proc),
    restart: async () => {
      await stopProcess(proc);
      await start();
    },
    close: async () => {
      await stopProcess(proc);
      await mock.stop();
    },
  };
}

/**
 * Gateways and workers on Redis, NATS (JetStream), the MongoDB stand-in
 * and the S3 stand-in (or a worker-local folder when no S3 stand-in is
 * configured), in the namespace `browser`.
 */
export async function startScaled({ gateways = 2, workers = 2 } = {}) {
  const need = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is not set: run the browser tests through scripts/test.sh, which starts the services`);
    return value;
  };
  const services = {
    MONGO_URI: need('CHATBOX_TEST_MONGO_URI'),
    S3_ENDPOINT: need('CHATBOX_TEST_S3_ENDPOINT'),
    S3_BUCKET: need('CHATBOX_TEST_S3_BUCKET'),
    CHATBOX_BLOB_S3_ACCESS_KEY_ID: need('CHATBOX_TEST_S3_ACCESS_KEY'),
    CHATBOX_BLOB_S3_SECRET_ACCESS_KEY: need('CHATBOX_TEST_S3_SECRET_KEY'),
  };
  const dir = scratch('scaled');
  const mock = await startMock(dir);
  const procs = [];
  const stop = async () => {
    await Promise.all(procs.map(stopProcess));
    await mock.stop();
  };
  try {
    return await scaled(dir, mock, procs, services, { gateways, workers, stop });
  } catch (e) {
    await stop();
    throw e;
  }
}

async function scaled(dir, mock, procs, services, { gateways, workers, stop }) {
  const env = {
    JWT_SECRET: SECRET,
    CHATBOX_NAMESPACE: 'browser',
    REDIS_URL: process.env.CHATBOX_TEST_REDIS_URL || 'redis://127.0.0.1:6379',
    NATS_URL: process.env.CHATBOX_TEST_NATS_URL || 'nats://127.0.0.1:4222',
    ...services,
    CHATBOX_STORE_DATABASE: 'chatbox_browser',
    ENCRYPTION_KEY,
    CHATBOX_CONFIG: providersConfig(dir, mock.addr),
    CHATBOX_BLOB_KIND: 's3',
    CHATBOX_BLOB_S3_PATH_STYLE: 'true',
    CHATBOX_UPLOADS_PREFIX: 'browser/files',
    CHATBOX_UPLOADS_QUARANTINE_PREFIX: 'browser/quarantine',
    CHATBOX_ADMIN_SAMPLE_INTERVAL: '2s',
    ...pagesFolder(),
  };
  const workerUrls = [];
  for (let i = 0; i < workers; i++) {
    const port = await freePort();
    const proc = run(`worker-${i}`, dir, ['worker', '--listen', `127.0.0.1:${port}`, '--pod-id', `browser-worker-${i}`], env);
    procs.push(proc);
    workerUrls.push([`http://127.0.0.1:${port}/chat/readyz`, proc]);
  }
  const gatewayUrls = [];
  for (let i = 0; i < gateways; i++) {
    const port = await freePort();
    const proc = run(`gateway-${i}`, dir, ['gateway', '--listen', `127.0.0.1:${port}`, '--pod-id', `browser-gateway-${i}`], env);
    procs.push(proc);
    gatewayUrls.push(`http://127.0.0.1:${port}`);
    workerUrls.push([`http://127.0.0.1:${port}/chat/readyz`, proc]);
  }
  for (const [url, proc] of workerUrls) await waitFor(url, 200, 60_000, url, proc);
  return {
    gateways: gatewayUrls,
    dir,
    mock,
    token: (who) => mint(env, who),
    stop,
  };
}

/** Debian's Chromium, headless, with a fake microphone and camera. */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} is missing: install Debian's chromium (scripts/test.sh does)`);
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

const VIEWPORTS = {
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  small: { viewport: { width: 320, height: 568 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
  desktop: { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 },
};

const pageErrors = new WeakMap();

/**
 * A page in a fresh context (`phone`: 390×844, touch; `small`: 320×568,
 * touch; `desktop`: 1280×800) with the microphone allowed. Console errors, uncaught
 * exceptions and CSP violations are collected for `assertNoPageErrors`.
 */
export async function newPage(browser, { viewport = 'desktop', colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ ...VIEWPORTS[viewport], colorScheme });
  await context.grantPermissions(['microphone']);
  const page = await context.newPage();
  const errors = [];
  pageErrors.set(page, errors);
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return page;
}

/** Fails with every error the page logged (expected ones filtered out by `allow`). */
export function assertNoPageErrors(page, { allow = [] } = {}) {
  const errors = (pageErrors.get(page) || []).filter((e) => !allow.some((pattern) => pattern.test(e)));
  if (errors.length) throw new Error(`the page logged errors:\n${errors.join('\n')}`);
}

/** Saves a full-page screenshot as `<artifacts>/<name>.png`. */
export async function screenshot(page, name) {
  const path = join(artifactsDir(), `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** axe-core's source, evaluated in the page (CDP evaluation is not bound by the page's CSP). */
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Audits the page as it is now with axe-core (every rule axe runs by
 * default: WCAG 2.0–2.2 A/AA and best practices) and fails on any
 * violation, of any impact, naming the rule and the elements.
 * `what` names the state in the failure (and in the screenshot saved then).
 */
export async function assertAccessible(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  if (!violations.length) return;
  await screenshot(page, `axe-${what.replace(/[^\w-]+/g, '-')}`);
  const lines = violations.map(
    (v) => `- ${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`).join('\n')}`,
  );
  throw new Error(`axe found ${violations.length} violation(s) in ${what}:\n${lines.join('\n')}`);
}
