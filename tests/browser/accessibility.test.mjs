// The pages for everyone (docs/ACCESSIBILITY.md), in Chromium against the
// real all-in-one: axe-core finds no violation in any state of the chat
// page (empty, streaming, answered, conversations menu open, error,
// reconnecting, taken over by a person) nor of the admin console
// (sessions, session view live and taken over, metrics), on a phone and a
// desktop, light and dark; at 320 px with text at 200% nothing scrolls
// sideways and every control is on screen; the conversations menu on a
// phone is a dialog that keeps the keyboard in and gives it back; a screen
// reader hears who speaks, an answer once when complete, and a countdown
// (the chat page's notice, the admin session view's status) only when the
// state changes.

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

      // Markdown in both bubbles (the answer echoes the question): code, bold, a link.
      await send(page, 'Tell me a story about `pastel de nata`, **food** and [maps](https://example.com/map) [[mock chunks=60 chunk-delay-ms=80]]');
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
      assert.equal(await admin.evaluate(() => document.activeElement.id), 'sessions-heading', '"All sessions" leaves focus on the list, not the body');
      // A date filter is one Tab stop (a datetime-local box has one per part).
      await admin.locator('#f-from').focus();
      await admin.keyboard.press('Tab');
      assert.equal(await admin.evaluate(() => document.activeElement.id), 'f-to');
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

/** What breaks reflow, measured in the page: sideways scrolling, controls off screen, a cut title, overlaps. */
function measureReflow() {
  const width = document.documentElement.clientWidth;
  const problems = [];
  for (const node of [document.documentElement, document.body, ...document.querySelectorAll('.main, .topbar, .composer, .banner')]) {
    if (node.scrollWidth > node.clientWidth + 1) problems.push(`${node.className || node.tagName} is ${node.scrollWidth} px wide in ${node.clientWidth}`);
  }
  const controls = document.querySelectorAll('.topbar button, .topbar select, .composer button, .composer textarea, .banner button');
  for (const node of controls) {
    if (!node.getClientRects().length) continue;
    const r = node.getBoundingClientRect();
    if (r.left < -0.5 || r.right > width + 0.5) problems.push(`#${node.id} is off screen (${Math.round(r.left)}..${Math.round(r.right)} of ${width})`);
  }
  const title = document.getElementById('chat-title');
  if (title.scrollWidth > title.clientWidth + 1) problems.push(`the title is cut: "${title.textContent}" in ${title.clientWidth} px`);
  const status = document.getElementById('connection-status').getBoundingClientRect();
  for (const node of document.querySelectorAll('.topbar-tools > *')) {
    if (!node.getClientRects().length) continue;
    const r = node.getBoundingClientRect();
    if (r.left < status.right && r.right > status.left && r.top < status.bottom && r.bottom > status.top) problems.push(`the status runs under #${node.id || node.className}`);
  }
  const text = document.querySelector('[data-testid="message"] .content');
  const input = document.getElementById('composer-input');
  const style = getComputedStyle(input);
  const pen = document.createElement('canvas').getContext('2d');
  pen.font = `${style.fontSize} ${style.fontFamily}`;
  const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const placeholderFits = pen.measureText(input.placeholder).width <= room;
  return { problems, width, placeholderFits, textSize: parseFloat(getComputedStyle(text || document.body).fontSize) };
}

describe('reflow: 320 px wide, text at 100% and 200%', () => {
  for (const how of ['normal text size', 'root font-size at 200%', "browser's default font size at 200%"]) {
    for (const viewport of ['small', 'phone']) {
      test(`every control on screen and no sideways scrolling, ${viewport}, ${how}`, T, async () => {
        const page = await newPage(browser, { viewport });
        if (how.startsWith('browser')) {
          const cdp = await page.context().newCDPSession(page);
          await cdp.send('Page.setFontSizes', { fontSizes: { standard: 32, fixed: 26 } });
        }
        const token = await stack.token({ sub: uniqueId('big'), name: 'Big Text' });
        await page.goto(`${stack.baseUrl}/chat/#token=${token}`);
        await online(page);
        if (how.startsWith('root')) {
          await page.evaluate(() => {
            document.documentElement.style.fontSize = '200%';
          });
        }
        await send(page, 'Hello with large text');
        await answered(page, 1);
        // Models whose names are long (the picker is what grew past the screen).
        await page.evaluate(() => {
          for (const option of document.querySelectorAll('#model-select option')) option.textContent = `A model with a rather long name (${option.value})`;
        });
        const measured = await page.evaluate(measureReflow);
        await screenshot(page, `a11y-reflow-${viewport}-${how.split(' ')[0].replace(/\W/g, '')}`);
        assert.deepEqual(measured.problems, [], `at ${measured.width} px`);
        if (!how.startsWith('normal')) assert.ok(measured.textSize >= 30, `message text follows the text size: ${measured.textSize} px`);
        else assert.ok(measured.placeholderFits, 'the placeholder fits the composer on one line');
        // The tools the header has are all there (three models: the picker shows).
        assert.ok(await page.getByTestId('model-select').isVisible());
        assert.ok(await page.getByTestId('new-chat-button').isVisible());
        assertNoPageErrors(page);
        await page.context().close();
      });
    }
  }
});

describe('the conversations menu on a phone is a dialog', () => {
  test('focus moves in, Tab stays inside, Escape and the close button give it back, the page behind is inert', T, async () => {
    const { page } = await openChat({ viewport: 'phone' });
    await send(page, 'Something to list');
    await answered(page, 1);
    const menu = page.getByTestId('sessions-button');
    const inMenu = () => page.evaluate(() => document.getElementById('sidebar').contains(document.activeElement));
    const focusedId = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.className);

    await menu.focus();
    await page.keyboard.press('Enter');
    assert.ok(await inMenu(), `focus moved into the menu, not left on ${await focusedId()}`);
    assert.equal(await page.locator('#sidebar').getAttribute('role'), 'dialog');
    assert.equal(await page.locator('#sidebar').getAttribute('aria-modal'), 'true');
    assert.equal(await page.evaluate(() => document.getElementById('main').inert), true, 'the page behind is inert');
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Tab');
      assert.ok(await inMenu(), `Tab ${i + 1} stayed in the menu (was on ${await focusedId()})`);
    }
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Shift+Tab');
      assert.ok(await inMenu(), `Shift+Tab ${i + 1} stayed in the menu (was on ${await focusedId()})`);
    }
    await page.keyboard.press('Escape');
    assert.equal(await focusedId(), 'sessions-button', 'Escape gives focus back to the menu button');
    assert.equal(await page.evaluate(() => document.getElementById('main').inert), false);
    assert.equal(await page.locator('#sidebar').getAttribute('role'), 'complementary');

    await page.keyboard.press('Enter');
    assert.ok(await inMenu());
    await page.locator('#close-sessions').focus();
    await page.keyboard.press('Enter');
    assert.equal(await focusedId(), 'sessions-button', 'the close button gives focus back to the menu button');
    assertNoPageErrors(page);
    await page.context().close();
  });
});

describe('a screen reader hears who speaks and what changed, once', () => {
  test('each message names its sender; a streamed answer is said once, when complete', T, async () => {
    const { page } = await openChat();
    await page.evaluate(() => {
      window.__said = [];
      const announcer = document.getElementById('announcer');
      new MutationObserver(() => window.__said.push(announcer.textContent)).observe(announcer, { childList: true, characterData: true, subtree: true });
    });
    await send(page, 'Tell me slowly [[mock chunks=20 chunk-delay-ms=60]]');
    await answered(page, 1);
    const said = await page.evaluate(() => window.__said);
    assert.equal(said.length, 1, `said once: ${JSON.stringify(said)}`);
    assert.match(said[0], /^Assistant: You said: Tell me slowly\./);
    assert.equal(await page.locator('[data-testid="message-list"]').getAttribute('aria-live'), null, 'the messages are not a live region');
    assert.match(await page.locator('[data-testid="message"][data-sender="user"]').first().textContent(), /^You/);
    assert.match(await page.locator('[data-testid="message"][data-sender="ai"]').first().textContent(), /^Assistant/);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('while reconnecting the countdown ticks on screen, the status is said once', T, async () => {
    const { page, cut } = await openChat();
    await page.evaluate(() => {
      window.__spoken = 0;
      const spoken = [document.getElementById('notice-text'), document.getElementById('status-text')];
      const observer = new MutationObserver(() => window.__spoken++);
      for (const node of spoken) observer.observe(node, { childList: true, characterData: true, subtree: true });
      window.__ticks = new Set();
      const countdown = document.getElementById('notice-countdown');
      new MutationObserver(() => window.__ticks.add(countdown.textContent)).observe(countdown, { childList: true, characterData: true, subtree: true });
    });
    await cut();
    await page.locator('[data-testid="connection-status"][data-state="reconnecting"]').waitFor(WAIT);
    // Three different countdown values seen on screen.
    await page.waitForFunction(() => window.__ticks.size >= 3, null, WAIT);
    assert.equal(await page.locator('#notice-countdown').getAttribute('aria-hidden'), 'true');
    const spoken = await page.evaluate(() => window.__spoken);
    const states = await page.evaluate(() => window.__ticks.size);
    // The status text changes with the connection's state (reconnecting, connecting, …), not every second.
    assert.ok(spoken <= 4, `the spoken regions changed ${spoken} times while the countdown showed ${states} values`);
    assert.equal(await page.locator('#notice-text').textContent(), 'Connection lost.');
    assertNoPageErrors(page, { allow: [/WebSocket connection to .* failed/, /Failed to load resource/] });
    await page.context().close();
  });

  test("the admin session view's status: the reconnect countdown ticks on screen, the status is said once", T, async () => {
    const { page: user } = await openChat({ viewport: 'desktop' });
    await send(user, 'Watch me');
    await answered(user, 1);
    const session = await user.getByTestId('message-list').getAttribute('data-session-id');
    const admin = await newPage(browser);
    let refuse = false;
    const open = new Set();
    await admin.routeWebSocket(/\/chat\/admin\/ws/, (ws) => {
      if (refuse) return ws.close({ code: 1012, reason: 'restarting' });
      open.add(ws);
      ws.connectToServer();
    });
    await admin.goto(stack.adminUrl);
    await admin.getByTestId('sessions-table').waitFor(WAIT);
    await admin.evaluate((id) => {
      location.hash = `#session=${encodeURIComponent(id)}`;
    }, session);
    await admin.locator('[data-testid="watch-status"][data-state="live"]').waitFor(WAIT);
    await admin.evaluate(() => {
      window.__spoken = 0;
      window.__ticks = new Set();
      const status = document.querySelector('[data-testid="watch-status"]');
      const text = status.querySelector('.watch-text');
      const countdown = status.querySelector('.watch-countdown');
      new MutationObserver(() => window.__spoken++).observe(text, { childList: true, characterData: true, subtree: true });
      new MutationObserver(() => window.__ticks.add(countdown.textContent)).observe(countdown, { childList: true, characterData: true, subtree: true });
    });
    refuse = true;
    for (const ws of open) await ws.close({ code: 1012, reason: 'restarting' });
    await admin.waitForFunction(() => window.__ticks.size >= 3, null, WAIT);
    const spoken = await admin.evaluate(() => window.__spoken);
    assert.ok(spoken <= 4, `the status text changed ${spoken} times while the countdown ticked`);
    assert.equal(await admin.locator('.watch-countdown').getAttribute('aria-hidden'), 'true');
    assertNoPageErrors(admin, { allow: [/WebSocket connection to .* failed/, /Failed to load resource/] });
    await admin.context().close();
    await user.context().close();
  });
});
