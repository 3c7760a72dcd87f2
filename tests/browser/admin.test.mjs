// The admin console in a real browser, against the real binaries.
//
// 1. Two gateways and two workers: a user on gateway A (the chat page)
//    asks for a person; an admin on gateway B sees the session waiting
//    first (the help queue, highlighted in the table), opens it, watches
//    the conversation live, takes over, writes to the user, reads the
//    user's reply (an XSS attempt shown as text), and releases it.
// 2. The all-in-one: the metrics page after some traffic (cards and four
//    charts for the last 24 hours), how a cut answer ended in the session
//    view, the sign-in form, and a refused token sending the console back
//    to sign-in in words.
// axe-core audits the views on the way (accessibility.test.mjs audits every
// view on a phone and a desktop, light and dark).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertAccessible,
  assertNoPageErrors,
  launchBrowser,
  newPage,
  screenshot,
  startAllInOne,
  startScaled,
  uniqueId,
} from './lib/harness.mjs';

const WAIT = { timeout: 20_000 };
const TEST_TIMEOUT = { timeout: 180_000 };

// The scaled stack needs the services scripts/test.sh starts; without them
// fail at once, before the harness starts anything (a half-started stack
// would leave its mock LLM running and the run hanging).
const SCALED_NEEDS = ['CHATBOX_TEST_MONGO_URI', 'CHATBOX_TEST_S3_ENDPOINT', 'CHATBOX_TEST_S3_BUCKET'];

/** Sends `text` from the chat page and waits until its answer has finished streaming. */
async function askAndWaitForAnswer(page, text) {
  const answersBefore = await page.locator('[data-testid="message"][data-sender="ai"]').count();
  await page.getByTestId('composer-input').fill(text);
  await page.getByTestId('send-button').click();
  await page
    .locator('[data-testid="message"][data-sender="user"]', { hasText: text })
    .first()
    .waitFor(WAIT);
  await page.waitForFunction(
    (before) => {
      const answers = document.querySelectorAll('[data-testid="message"][data-sender="ai"]');
      return answers.length > before && !document.querySelector('[data-testid="message"][data-streaming="true"]');
    },
    answersBefore,
    WAIT,
  );
}

describe('the admin console on two gateways', () => {
  let stack;
  let browser;

  before(async () => {
    const missing = SCALED_NEEDS.filter((name) => !process.env[name]);
    if (missing.length) throw new Error(`${missing.join(', ')} not set: run the browser tests through scripts/test.sh, which starts the services`);
    stack = await startScaled({ gateways: 2, workers: 2 });
    browser = await launchBrowser();
  }, TEST_TIMEOUT);

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('a help request is seen first, taken over, answered by a person and released', TEST_TIMEOUT, async () => {
    const [gatewayA, gatewayB] = stack.gateways;
    const userId = uniqueId('help-user');
    const userToken = await stack.token({ sub: userId, name: 'Uma User' });
    const adminId = uniqueId('admin');
    const adminToken = await stack.token({ sub: adminId, name: 'Ada Admin', admin: true });

    // The user, on gateway A: a question, its answer, then "talk to a person".
    const user = await newPage(browser, { viewport: 'desktop' });
    await user.goto(`${gatewayA}/chat/#token=${userToken}`);
    await user.locator('[data-testid="connection-status"][data-state="online"]').waitFor(WAIT);
    await askAndWaitForAnswer(user, 'Where is my parcel?');
    await user.getByTestId('help-button').click();

    // The admin, on gateway B.
    const admin = await newPage(browser, { viewport: 'desktop' });
    await admin.goto(`${gatewayB}/chat/admin/#token=${adminToken}`);
    assert.ok(!admin.url().includes('token='), `the token is taken out of the address: ${admin.url()}`);

    // Waiting for a person: in the pinned queue, above the table.
    const item = admin.getByTestId('help-item').filter({ hasText: userId });
    await item.waitFor(WAIT);
    const sessionId = await item.getAttribute('data-session-id');
    assert.ok(sessionId, 'the queue names the session');
    assert.match(await item.textContent(), /waiting \d+/, 'the queue says how long the user has waited');
    const queueFirst = await admin.evaluate(() => {
      const queue = document.querySelector('[data-testid="help-queue"]');
      const table = document.querySelector('[data-testid="sessions-table"]');
      return !!(queue.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING);
    });
    assert.ok(queueFirst, 'the help queue comes before the table');

    // …and highlighted in the table, connected on gateway A.
    const row = admin.locator(`[data-testid="session-row"][data-session-id="${sessionId}"]`);
    await row.waitFor(WAIT);
    assert.equal(await row.getAttribute('data-help'), 'true');
    await admin.waitForFunction(
      (id) => /browser-gateway-0/.test(document.querySelector(`[data-testid="session-row"][data-session-id="${id}"]`)?.textContent || ''),
      sessionId,
      WAIT,
    );
    await screenshot(admin, 'admin-sessions-desktop');
    await assertAccessible(admin, 'admin sessions with a help request');

    // Open it: the conversation so far, the help request, and ourselves watching.
    await item.getByRole('link', { name: /open/i }).click();
    const view = admin.getByTestId('session-view');
    await view.waitFor(WAIT);
    await admin.locator('[data-testid="watch-status"][data-state="live"]').waitFor(WAIT);
    const conversation = admin.getByTestId('conversation');
    await conversation.locator('[data-testid="message"][data-sender="user"]', { hasText: 'Where is my parcel?' }).waitFor(WAIT);
    await conversation.locator('[data-testid="message"][data-sender="ai"]').first().waitFor(WAIT);
    await conversation.locator('[data-testid="message"][data-type="help_request"]').waitFor(WAIT);
    await admin.locator('[data-testid="presence"] [data-testid="presence-watcher"][data-me="true"]', { hasText: 'Ada Admin' }).waitFor(WAIT);

    // Take over: the user sees who assists.
    await admin.getByTestId('takeover-button').click();
    await admin.getByTestId('release-button').waitFor(WAIT);
    await admin.getByTestId('admin-composer').waitFor(WAIT);
    await admin.locator('[data-testid="presence-assisting"]', { hasText: 'Ada Admin' }).waitFor(WAIT);
    const banner = user.getByTestId('assist-banner');
    await banner.waitFor(WAIT);
    assert.match(await banner.textContent(), /Ada Admin/);

    // The admin writes; the user reads it as the admin's.
    const hello = 'Hi, I am Ada from support. Let me check your parcel.';
    await admin.getByTestId('admin-composer').locator('textarea').fill(hello);
    await admin.getByTestId('admin-send').click();
    await user.locator('[data-testid="message"][data-sender="admin"]', { hasText: hello }).waitFor(WAIT);

    // The user answers (markup in it stays text); the admin reads it live.
    const reply = 'Thanks! <img src=x onerror="window.__xss=1"> order 42';
    await user.getByTestId('composer-input').fill(reply);
    await user.getByTestId('send-button').click();
    const replyInAdmin = conversation.locator('[data-testid="message"][data-sender="user"]', { hasText: 'order 42' });
    await replyInAdmin.waitFor(WAIT);
    assert.ok((await replyInAdmin.textContent()).includes('<img src=x'), 'the markup is shown as text');
    assert.equal(await conversation.locator('img').count(), 0, 'no element was made from the message');
    assert.equal(await admin.evaluate(() => window.__xss), undefined);
    await screenshot(admin, 'admin-session-view-desktop');
    await assertAccessible(admin, 'admin session view, taken over');

    // Release: the banner goes away, the assistant is back.
    await admin.getByTestId('release-button').click();
    await admin.getByTestId('takeover-button').waitFor(WAIT);
    await banner.waitFor({ state: 'hidden', ...WAIT });
    await conversation.locator('[data-testid="message"][data-type="admin_leave"]').waitFor(WAIT);
    assert.ok(await admin.getByTestId('admin-composer').isHidden(), 'no composer once released');

    // Back to the list: the session has left the queue (an admin assisted it).
    await admin.getByTestId('back-link').click();
    await admin.getByTestId('sessions-table').waitFor(WAIT);
    await admin.waitForFunction(
      (id) => !document.querySelector(`[data-testid="help-item"][data-session-id="${id}"]`),
      sessionId,
      WAIT,
    );

    assertNoPageErrors(admin);
    assertNoPageErrors(user);
  });
});

describe('the admin console on the all-in-one', () => {
  let server;
  let browser;

  before(async () => {
    server = await startAllInOne();
    browser = await launchBrowser();
  }, TEST_TIMEOUT);

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test('the metrics page draws its cards and charts for the last 24 hours', TEST_TIMEOUT, async () => {
    // Some traffic: two users, one question each.
    for (const name of ['Mia', 'Noah']) {
      const token = await server.token({ sub: uniqueId(name.toLowerCase()), name });
      const user = await newPage(browser, { viewport: 'desktop' });
      await user.goto(`${server.baseUrl}/chat/#token=${token}`);
      await user.locator('[data-testid="connection-status"][data-state="online"]').waitFor(WAIT);
      await askAndWaitForAnswer(user, `Hello from ${name}`);
      assertNoPageErrors(user);
      await user.context().close();
    }

    const admin = await newPage(browser, { viewport: 'desktop' });
    await admin.goto(server.adminUrl);
    await admin.getByTestId('sessions-table').waitFor(WAIT);
    await admin.getByRole('link', { name: 'Metrics' }).click();
    await admin.getByTestId('metrics-view').waitFor(WAIT);
    await admin.getByTestId('range-select').selectOption('day');
    await admin.waitForFunction(() => document.querySelectorAll('[data-testid="metrics-chart"]').length === 4, null, WAIT);
    const sessions = admin.locator('[data-testid="metric-card"][data-metric="total_sessions"]');
    await admin.waitForFunction(
      () => Number(document.querySelector('[data-testid="metric-card"][data-metric="total_sessions"]')?.dataset.value) >= 2,
      null,
      WAIT,
    );
    assert.match(await sessions.textContent(), /[1-9]/);
    const tokens = Number(await admin.locator('[data-testid="metric-card"][data-metric="total_tokens"]').getAttribute('data-value'));
    assert.ok(tokens > 0, `tokens were counted: ${tokens}`);

    // The "sessions started" chart has a bar, and every chart a text alternative.
    const started = admin.locator('[data-testid="metrics-chart"][data-chart="sessions"]');
    assert.ok((await started.locator('rect.bar').count()) >= 1, 'a bar for the sessions started');
    for (const chart of await admin.getByTestId('metrics-chart').all()) {
      assert.ok((await chart.locator('svg[role="img"] > title').textContent()).length > 0);
      assert.ok((await chart.locator('table tbody tr').count()) > 0, 'a table of the values for screen readers');
    }
    await screenshot(admin, 'admin-metrics-desktop');
    await assertAccessible(admin, 'admin metrics');
    assertNoPageErrors(admin);
  });

  test('the session view says how a cut answer ended, and shows the replaced text', TEST_TIMEOUT, async () => {
    const token = await server.token({ sub: uniqueId('mod'), name: 'Moe' });
    const user = await newPage(browser, { viewport: 'desktop' });
    await user.goto(`${server.baseUrl}/chat/#token=${token}`);
    await user.locator('[data-testid="connection-status"][data-state="online"]').waitFor(WAIT);
    await user.getByTestId('model-select').selectOption('mock-dify');
    await user.waitForFunction(() => /Answers now come from/.test(document.getElementById('typing').textContent), null, WAIT);
    await askAndWaitForAnswer(user, 'Something risky [[mock chunks=6 replace-after=3]]');
    const sessionId = await user.getByTestId('message-list').getAttribute('data-session-id');
    assert.ok(sessionId, 'the chat page names its session');
    assertNoPageErrors(user);
    await user.context().close();

    const admin = await newPage(browser, { viewport: 'desktop' });
    await admin.goto(server.adminUrl);
    await admin.getByTestId('sessions-table').waitFor(WAIT);
    await admin.evaluate((id) => {
      location.hash = `#session=${encodeURIComponent(id)}`;
    }, sessionId);
    const answer = admin.getByTestId('conversation').locator('[data-testid="message"][data-sender="ai"]');
    await answer.first().waitFor(WAIT);
    assert.equal(await answer.first().getAttribute('data-finish-reason'), 'content_filter');
    assert.match(await answer.first().getByTestId('finish-note').innerText(), /content filter/);
    assert.match(await answer.first().innerText(), /withheld by the app's content moderation/);
    assert.doesNotMatch(await answer.first().innerText(), /You said/, 'the moderated text is not shown');
    await screenshot(admin, 'admin-cut-answer-desktop');
    assertNoPageErrors(admin);
  });

  test('signing in with a pasted token, and back to sign-in when a token is refused', TEST_TIMEOUT, async () => {
    const page = await newPage(browser, { viewport: 'desktop' });
    await page.goto(`${server.baseUrl}/chat/admin/`);
    await page.getByTestId('signin-form').waitFor(WAIT);
    await assertAccessible(page, 'admin sign-in');
    await page.getByTestId('token-input').fill(server.adminToken);
    await page.getByTestId('signin-form').getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('sessions-table').waitFor(WAIT);

    // A reload keeps the sign-in (this tab only); sign out forgets it.
    await page.reload();
    await page.getByTestId('sessions-table').waitFor(WAIT);
    await page.getByTestId('signout-button').click();
    await page.getByTestId('signin-form').waitFor(WAIT);
    await page.reload();
    await page.getByTestId('signin-form').waitFor(WAIT);

    // A user's token has no admin role: refused, in words.
    await page.getByTestId('token-input').fill(server.userToken);
    await page.getByTestId('signin-form').getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('signin-message').filter({ hasText: 'admin role' }).waitFor(WAIT);

    // A bad token in the link: back to sign-in with a message.
    await page.goto(`${server.baseUrl}/chat/admin/#token=${server.adminToken.slice(0, -4)}AAAA`);
    await page.getByTestId('signin-form').waitFor(WAIT);
    await page.getByTestId('signin-message').filter({ hasText: /not valid|expired/ }).waitFor(WAIT);
    assertNoPageErrors(page, { allow: [/status of 40[13]/] });
  });
});
