// The chat page in Chromium against the real all-in-one and the mock LLM:
// streaming, history after a reload, reconnecting after a server restart,
// markup shown as text, model choice, stopping an answer, an answer the
// provider moderated (replaced in place, noted), an answer that starts over
// after its worker died (no text twice), an agent at work, images, refused
// files, voice messages with the fake microphone, an embedded page that
// hands its socket a fresh token before the first expires, and screenshots of the
// page on a phone (light and dark) and on a desktop, each audited by
// axe-core (accessibility.test.mjs audits every state).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import {
  assertAccessible,
  assertNoPageErrors,
  launchBrowser,
  newPage,
  screenshot,
  startAllInOne,
  uniqueId,
} from './lib/harness.mjs';

const T = { timeout: 120_000 };
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

/** A chat link for a user of its own (one active session per user). */
async function chatUrlFor(name = 'Test User') {
  const token = await stack.token({ sub: uniqueId('user'), name });
  return `${stack.baseUrl}/chat/#token=${token}`;
}

async function openChat({ viewport = 'desktop', colorScheme = 'light', url } = {}) {
  const page = await newPage(browser, { viewport, colorScheme });
  const link = url || (await chatUrlFor());
  await page.goto(link);
  await online(page);
  return { page, url: link };
}

function online(page, timeout = 30_000) {
  return page.locator('[data-testid="connection-status"][data-state="online"]').waitFor({ timeout });
}

const messages = (page, sender) => page.locator(`[data-testid="message"][data-sender="${sender}"]`);

async function send(page, text) {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await input.press('Enter');
}

/** Waits for the number-th answer (1-based) to be complete and returns its text. */
async function answer(page, number, timeout = 30_000) {
  await page.waitForFunction(
    (n) => {
      const all = document.querySelectorAll('[data-testid="message"][data-sender="ai"]');
      const m = all[n - 1];
      return m && m.dataset.streaming !== 'true' && m.querySelector('.meta time') && m.textContent.length > 0;
    },
    number,
    { timeout },
  );
  return messages(page, 'ai').nth(number - 1).locator('.content').innerText();
}

/** The mock Dify app's moderation preset (tools/mock-llm/src/dify.rs). */
const MODERATED = "Sorry, this answer was withheld by the app's content moderation.";

/** Picks the model for the session and waits until the server confirms it. */
async function useModel(page, id) {
  const select = page.getByTestId('model-select');
  await select.selectOption(id);
  // The server's confirmation shows as a short note ("Answers now come from …").
  await page.waitForFunction(() => /Answers now come from/.test(document.getElementById('typing').textContent), null, WAIT);
}

/** A real PNG: width × height, RGB, a colour gradient. */
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) {
      row[1 + x * 3] = Math.round((x / width) * 255);
      row[2 + x * 3] = Math.round((y / height) * 255);
      row[3 + x * 3] = 180;
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Records, in the page, what the message list went through. */
async function watchStreaming(page) {
  await page.evaluate(() => {
    window.__seen = { streaming: false, partials: [], progress: false };
    const list = document.querySelector('[data-testid="message-list"]');
    new MutationObserver(() => {
      const live = list.querySelector('[data-testid="message"][data-sender="ai"][data-streaming="true"] .content');
      if (live) {
        window.__seen.streaming = true;
        const text = live.textContent;
        if (text && window.__seen.partials[window.__seen.partials.length - 1] !== text) window.__seen.partials.push(text);
      }
      if (list.querySelector('[data-testid="upload-progress"]')) window.__seen.progress = true;
    }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

describe('the chat page', () => {
  test('a message is answered in a stream, then completely', T, async () => {
    const { page } = await openChat();
    await watchStreaming(page);
    await send(page, 'Hello there [[mock chunks=20 chunk-delay-ms=60]]');
    const mine = messages(page, 'user').first();
    await mine.waitFor();
    assert.match(await mine.innerText(), /Hello there/);
    const text = await answer(page, 1);
    assert.match(text, /^You said: Hello there\./);
    assert.ok(!text.includes('[[mock'), 'directives are not echoed');
    const seen = await page.evaluate(() => window.__seen);
    assert.ok(seen.streaming, 'the answer was seen with data-streaming="true"');
    assert.ok(seen.partials.length >= 2, `the text grew chunk by chunk: ${JSON.stringify(seen.partials)}`);
    assert.ok(seen.partials[0].length < text.length, 'the first partial text was shorter than the answer');
    // The user's message was confirmed by the echo (no longer pending).
    assert.equal(await mine.evaluate((m) => m.classList.contains('pending')), false);
    assert.equal(await page.getByTestId('stop-button').isVisible(), false);
    assert.equal(await page.getByTestId('message-list').getAttribute('aria-busy'), 'false');
    // The session shows up in the list, marked as the open one.
    await page.locator('[data-testid="session-item"][aria-current="true"]').waitFor(WAIT);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('after a reload the conversation is back (the token is kept for the tab)', T, async () => {
    const { page } = await openChat();
    await send(page, 'Remember this: blue whales');
    await answer(page, 1);
    assert.ok(!page.url().includes('token='), 'the token is taken out of the address bar');
    const before = await page.getByTestId('message-list').getAttribute('data-session-id');

    await page.reload();
    await online(page);
    await messages(page, 'ai').first().waitFor(WAIT);
    await answer(page, 1);
    assert.equal(await messages(page, 'user').count(), 1);
    assert.equal(await messages(page, 'ai').count(), 1);
    assert.match(await messages(page, 'user').first().innerText(), /Remember this: blue whales/);
    assert.match(await messages(page, 'ai').first().innerText(), /You said: Remember this: blue whales/);
    assert.equal(await page.getByTestId('message-list').getAttribute('data-session-id'), before);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('when the server goes away the page reconnects to the same session', T, async () => {
    const { page } = await openChat();
    await send(page, 'Before the restart');
    await answer(page, 1);
    const session = await page.getByTestId('message-list').getAttribute('data-session-id');
    assert.ok(session);

    await stack.stop();
    await page.locator('[data-testid="connection-status"][data-state="reconnecting"]').waitFor(WAIT);
    // Written while the server is away: kept as pending, sent once it is back.
    await send(page, 'While you were away');
    const pending = page.locator('[data-testid="message"][data-sender="user"].pending');
    await pending.waitFor();
    assert.match(await pending.innerText(), /While you were away/);
    await stack.start();
    await online(page, 60_000);
    assert.equal(await page.getByTestId('message-list').getAttribute('data-session-id'), session);
    await pending.waitFor({ state: 'detached', ...WAIT });
    const text = await answer(page, 2);
    assert.match(text, /You said: While you were away/);
    assert.equal(await messages(page, 'user').count(), 2);
    assert.equal(await messages(page, 'ai').count(), 2);
    assert.match(await messages(page, 'user').first().innerText(), /Before the restart/);

    // The browser reports the refused connections while the server was down.
    assertNoPageErrors(page, {
      allow: [/WebSocket connection to .* failed/, /ERR_CONNECTION_REFUSED/, /Failed to load resource/, /Failed to fetch/],
    });
    await page.context().close();
  });

  test('markup in messages is shown as text, never run', T, async () => {
    const { page } = await openChat();
    const dialogs = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    const payload = '<img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(3)) **bold**';
    await send(page, payload);
    const text = await answer(page, 1);
    assert.ok(text.includes('<img src=x onerror=alert(1)>'), text);
    assert.ok(text.includes('<script>alert(2)</script>'), text);
    const list = page.getByTestId('message-list');
    assert.equal(await list.locator('img').count(), 0, 'no image element was injected');
    assert.equal(await list.locator('script').count(), 0, 'no script element was injected');
    assert.equal(await list.locator('a[href^="javascript"]').count(), 0, 'no javascript: link');
    assert.equal(await list.locator('[onerror]').count(), 0);
    assert.ok((await list.locator('strong', { hasText: 'bold' }).count()) >= 1, 'markdown still works');
    await page.getByText('<img src=x onerror=alert(1)>').first().waitFor();
    assert.deepEqual(dialogs, []);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('choosing another model: the next answer comes from it', T, async () => {
    const { page } = await openChat();
    const select = page.getByTestId('model-select');
    assert.equal(await select.inputValue(), 'mock-gpt');
    await send(page, 'first question');
    await answer(page, 1);
    assert.equal(await messages(page, 'ai').nth(0).getAttribute('data-model-id'), 'mock-gpt');
    assert.match(await messages(page, 'ai').nth(0).locator('.meta').innerText(), /Mock GPT/);

    await select.selectOption('mock-claude');
    await send(page, 'second question');
    await answer(page, 2);
    assert.equal(await messages(page, 'ai').nth(1).getAttribute('data-model-id'), 'mock-claude');
    assert.match(await messages(page, 'ai').nth(1).locator('.meta').innerText(), /Mock Claude/);
    assert.equal(await select.inputValue(), 'mock-claude');
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('an answer can be stopped mid-stream and keeps its text', T, async () => {
    const { page } = await openChat({ viewport: 'phone' });
    await send(page, 'Tell me a long story [[mock chunks=80 chunk-delay-ms=100]]');
    await page.waitForFunction(() => {
      const m = document.querySelector('[data-testid="message"][data-sender="ai"][data-streaming="true"]');
      return m && m.textContent.length > 40;
    }, null, WAIT);
    const stop = page.getByTestId('stop-button');
    await stop.waitFor({ state: 'visible' });
    await stop.click();
    const stopped = page.locator('[data-testid="message"][data-sender="ai"][data-finish-reason="stopped"]');
    await stopped.waitFor(WAIT);
    await stop.waitFor({ state: 'hidden' });
    const kept = await stopped.locator('.content').innerText();
    assert.match(kept, /^You said: Tell me a long story\./);
    assert.match(await stopped.locator('.meta').innerText(), /Stopped/);
    assert.equal(await stopped.getAttribute('data-streaming'), null);

    // The composer works again.
    await send(page, 'And now a short one');
    const next = await answer(page, 2);
    assert.match(next, /You said: And now a short one/);
    assert.ok(kept.split(' ').length < 80, 'the stopped answer is shorter than the full one');
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('an answer the provider moderated is replaced in place and noted, also after a reload', T, async () => {
    const { page, url } = await openChat();
    await useModel(page, 'mock-dify');
    await watchStreaming(page);
    await send(page, 'Say something risky [[mock chunks=8 chunk-delay-ms=80 replace-after=4]]');
    const cut = page.locator('[data-testid="message"][data-sender="ai"][data-finish-reason="content_filter"]');
    await cut.waitFor(WAIT);
    assert.equal(await cut.locator('.content').innerText(), MODERATED);
    assert.match(await cut.getByTestId('finish-note').innerText(), /content filter/);
    const seen = await page.evaluate(() => window.__seen);
    assert.ok(seen.partials.some((p) => p.startsWith('You said')), `the first text was shown: ${JSON.stringify(seen.partials)}`);
    assert.ok(
      seen.partials.every((p) => !(p.includes('You said') && p.includes('withheld'))),
      `never the old and the new text together: ${JSON.stringify(seen.partials)}`,
    );
    await screenshot(page, 'chat-moderated-answer-desktop');

    // History keeps the replacement and says how the answer ended.
    await page.goto('about:blank');
    await page.goto(url);
    await online(page);
    const kept = page.locator('[data-testid="message"][data-sender="ai"][data-finish-reason="content_filter"]');
    await kept.waitFor(WAIT);
    assert.equal(await kept.locator('.content').innerText(), MODERATED);
    assert.match(await kept.getByTestId('finish-note').innerText(), /content filter/);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('an answer that starts over (its worker died) never shows text twice, nor the question', T, async () => {
    const page = await newPage(browser);
    // Between the page and the server, after the fifth chunk of the answer:
    // what a client meets when a worker dies mid-answer and another takes
    // the turn over (docs/PROTOCOL.md, "When a worker dies mid-answer") —
    // the echo once more (as after a reconnect to another gateway), a
    // `loading` that starts the answer over, then the answer from its start.
    let echo = null;
    const head = [];
    let restarted = false;
    await page.routeWebSocket(/\/chat\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((message) => {
        ws.send(message);
        const frame = JSON.parse(message);
        if (frame.type === 'user_message' && frame.sender === 'user') echo = message;
        if (frame.type !== 'ai_response' || frame.done !== false || restarted) return;
        head.push(message);
        if (head.length < 5) return;
        restarted = true;
        ws.send(echo);
        const { session_id, message_id, timestamp } = frame;
        ws.send(JSON.stringify({ type: 'loading', session_id, message_id, metadata: { active: 'true' }, timestamp }));
        for (const chunk of head) ws.send(chunk);
      });
    });
    await page.goto(await chatUrlFor());
    await online(page);
    await watchStreaming(page);
    await send(page, 'Tell me once more [[mock chunks=20 chunk-delay-ms=60]]');
    const text = await answer(page, 1);
    assert.ok(restarted, 'the answer started over mid-stream');
    assert.match(text, /^You said: Tell me once more\./);
    assert.equal(await messages(page, 'user').count(), 1, 'the question is shown once');
    assert.equal(await messages(page, 'ai').count(), 1, 'one answer');
    const before = head.map((m) => JSON.parse(m).content).join('');
    const seen = await page.evaluate(() => window.__seen);
    assert.ok(
      seen.partials.every((p) => p.indexOf(before) === p.lastIndexOf(before)),
      `no flash of the first text twice: ${JSON.stringify(seen.partials)}`,
    );
    assert.equal(text.indexOf(before), text.lastIndexOf(before));
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('a message waiting for a worker shows as sent, its answer as waiting', T, async () => {
    const page = await newPage(browser);
    // Between the page and the server: everything after the gateway's
    // `queued` acknowledgement is held back for a while, as when every
    // worker is busy (docs/PROTOCOL.md, `loading`).
    let queued = null;
    let release;
    const held = new Promise((resolve) => (release = resolve));
    await page.routeWebSocket(/\/chat\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage(async (message) => {
        const frame = JSON.parse(message);
        if (frame.type === 'loading' && frame.metadata && frame.metadata.status === 'queued') {
          queued = frame;
          ws.send(message);
          return;
        }
        if (queued) await held;
        ws.send(message);
      });
    });
    await page.goto(await chatUrlFor());
    await online(page);
    await send(page, 'Anyone there?');
    await page.waitForFunction(() => document.querySelector('.queued-label'), null, WAIT);
    const mine = messages(page, 'user').first();
    assert.equal(await mine.evaluate((m) => m.classList.contains('pending')), false, 'accepted, no longer pending');
    assert.match(await mine.innerText(), /Sent/);
    const waiting = messages(page, 'ai').first();
    assert.match(await waiting.getByTestId('queued-status').innerText(), /Waiting for the assistant/);
    assert.equal(queued.id, await mine.getAttribute('data-client-id'));
    release();
    const text = await answer(page, 1);
    assert.match(text, /^You said: Anyone there\?/);
    assert.equal(await messages(page, 'ai').count(), 1, 'the waiting bubble became the answer');
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('an agent at work says so, naming its tool, and the text around it stays', T, async () => {
    const { page } = await openChat({ viewport: 'phone' });
    await useModel(page, 'mock-dify');
    await send(page, 'Look it up [[mock chunks=4 chunk-delay-ms=50 agent-tool=web_search ping-gap-ms=2500 ping-every-ms=500]]');
    const status = page.getByTestId('working-status');
    await status.waitFor(WAIT);
    assert.match(await status.innerText(), /Working: web_search/);
    const ai = messages(page, 'ai').first();
    assert.match(await ai.locator('.content').innerText(), /^You/, 'the text before the tool call stays');
    assert.equal(await ai.getAttribute('data-streaming'), 'true');
    await screenshot(page, 'chat-agent-working-phone');
    await assertAccessible(page, 'chat, an agent at work');
    const text = await answer(page, 1);
    assert.match(text, /^You said: Look it up\./);
    assert.equal(await page.getByTestId('working-status').count(), 0, 'the status goes with the answer');
    assert.equal(await ai.getAttribute('data-finish-reason'), null, 'a complete answer has no note');
    assert.equal(await ai.getByTestId('finish-note').count(), 0);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('an image is sent, shown as a thumbnail, opened and downloaded', T, async () => {
    const { page } = await openChat();
    await watchStreaming(page);
    const bytes = png(48, 32);
    await page.getByTestId('composer-input').fill('What colours are these?');
    await page.getByTestId('file-input').setInputFiles({ name: 'gradient.png', mimeType: 'image/png', buffer: bytes });
    const thumb = page.getByTestId('image-thumbnail');
    await thumb.waitFor(WAIT);
    await page.waitForFunction(() => {
      const img = document.querySelector('[data-testid="image-thumbnail"]');
      return img && img.complete && img.naturalWidth === 48;
    });
    assert.ok(await page.evaluate(() => window.__seen.progress), 'the upload showed its progress');
    const message = messages(page, 'user').filter({ has: thumb });
    assert.match(await message.innerText(), /What colours are these\?/, 'the composer text is the caption');

    // Full size in the page's own viewer.
    await thumb.click();
    const viewer = page.locator('#viewer');
    await viewer.waitFor({ state: 'visible' });
    await page.keyboard.press('Escape');
    await viewer.waitFor({ state: 'hidden' });

    const href = await page.getByTestId('download-link').first().getAttribute('href');
    const download = await fetch(new URL(href, stack.baseUrl));
    assert.equal(download.status, 200);
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), bytes);
    await answer(page, 1);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('a refused file shows the reason next to it', T, async () => {
    const { page } = await openChat();
    const exe = Buffer.concat([
      Buffer.from('MZ'),
      Buffer.alloc(58),
      Buffer.from([0x80, 0, 0, 0]),
      Buffer.from('This program cannot be run in DOS mode.\r\n'),
      Buffer.alloc(400, 0x90),
    ]);
    await page.getByTestId('file-input').setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: exe });
    const banner = page.locator('[data-testid="error-banner"][data-code="FILE_REJECTED"]');
    await banner.waitFor(WAIT);
    const said = await banner.innerText();
    assert.match(said, /The file was refused\. \S+/, `the reason follows: ${said}`);
    const failed = page.locator('[data-testid="message"].failed[data-error-code="FILE_REJECTED"]');
    await failed.waitFor();
    assert.match(await failed.innerText(), /refused/);
    assert.equal(await page.getByTestId('image-thumbnail').count(), 0);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('a voice message is recorded by holding the button, then played and transcribed', T, async () => {
    const { page } = await openChat();
    const button = page.getByTestId('record-button');
    const box = await button.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.getByTestId('level-meter').waitFor({ state: 'visible' });
    await page.locator('[data-testid="record-button"][data-state="recording"]').waitFor();
    await page.waitForTimeout(1500); // holding the button: the length of the recording
    await page.mouse.up();
    const transcript = page.getByTestId('transcript');
    await transcript.waitFor(WAIT);
    assert.match(await transcript.innerText(), /transcript of \S+\.webm: \d+ bytes/);
    const src = await page.getByTestId('voice-player').getAttribute('src');
    assert.ok(src, 'the player has the recording');
    const audio = await fetch(new URL(src, stack.baseUrl));
    assert.equal(audio.status, 200);
    assert.ok((await audio.arrayBuffer()).byteLength > 1000, 'a real recording');
    await page.getByTestId('level-meter').waitFor({ state: 'hidden' });
    const text = await answer(page, 1);
    assert.match(text, /You said: transcript of /);
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('asking for a person: acknowledged, assisted by an admin, then handed back', T, async () => {
    const { page } = await openChat({ viewport: 'phone' });
    await page.getByTestId('help-button').click();
    const ack = page.locator('[data-testid="message"][data-sender="system"]', { hasText: 'talk to a person' });
    await ack.waitFor(WAIT);
    const session = await page.getByTestId('message-list').getAttribute('data-session-id');

    // An admin takes the session over on the admin socket.
    const admin = await (await browser.newContext()).newPage();
    await admin.goto(`${stack.baseUrl}/chat/healthz`);
    await admin.evaluate(
      ([token, sid]) =>
        new Promise((resolve, reject) => {
          const url = location.origin.replace(/^http/, 'ws') + '/chat/admin/ws';
          const ws = new WebSocket(url, ['chatbox.v1', 'bearer.' + token]);
          window.adminSocket = ws;
          ws.onerror = reject;
          ws.onmessage = (e) => {
            if (JSON.parse(e.data).type === 'takeover') resolve();
          };
          ws.onopen = () => ws.send(JSON.stringify({ type: 'takeover', id: 't-1', session_id: sid }));
        }),
      [stack.adminToken, session],
    );
    const banner = page.getByTestId('assist-banner');
    await banner.waitFor(WAIT);
    assert.equal(await banner.innerText(), 'Assisted by Ada Admin');
    const adminSays = (frame) => admin.evaluate((f) => window.adminSocket.send(JSON.stringify(f)), frame);
    await adminSays({ type: 'typing_indicator', session_id: session, metadata: { active: 'true' } });
    await page.getByText('Ada Admin is typing…').waitFor(WAIT);
    await adminSays({ type: 'user_message', id: 'a-1', session_id: session, content: 'Hello, I am **Ada**. How can I help?' });
    const fromAdmin = messages(page, 'admin').first();
    await fromAdmin.waitFor(WAIT);
    assert.match(await fromAdmin.innerText(), /Ada Admin\s+Hello, I am Ada\. How can I help\?/);

    await adminSays({ type: 'release', id: 'r-1', session_id: session });
    await banner.waitFor({ state: 'hidden', ...WAIT });
    await page.locator('[data-testid="message"][data-sender="system"]', { hasText: 'left the conversation' }).waitFor(WAIT);
    await admin.context().close();
    assertNoPageErrors(page);
    await page.context().close();
  });

  test('embedded, the page asks its host for a fresh token before the first expires, and keeps its socket', T, async () => {
    const sub = uniqueId('embedded');
    // Expires in 65 s: the page asks a minute before, so about 5 s from now.
    const first = await stack.token({ sub, name: 'Embedded', ttl: '65s' });
    const fresh = await stack.token({ sub, name: 'Embedded' });
    const page = await newPage(browser, {});
    const sent = [];
    const received = [];
    page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => sent.push(JSON.parse(payload)));
      ws.on('framereceived', ({ payload }) => received.push(JSON.parse(payload)));
    });
    await page.goto(`${stack.baseUrl}/chat/healthz`);
    // The host page listens before the frame loads, as a real host does.
    await page.setContent(`<script>
      window.asked = [];
      addEventListener('message', (e) => {
        const chat = document.querySelector('iframe');
        if (!chat || e.source !== chat.contentWindow) return;
        window.asked.push(e.data);
        const token = e.data.type === 'chatbox:ready' ? ${JSON.stringify(first)} : ${JSON.stringify(fresh)};
        chat.contentWindow.postMessage({ type: 'chatbox:auth', token }, '*');
      });
    </script><iframe src="${stack.baseUrl}/chat/" title="Chat" style="width:800px;height:600px"></iframe>`);
    const chat = page.frameLocator('iframe');
    await chat.locator('[data-testid="connection-status"][data-state="online"]').waitFor(WAIT);
    await page.waitForFunction(() => window.asked.some((m) => m.type === 'chatbox:auth_required'), null, WAIT);
    const asked = await page.evaluate(() => window.asked);
    assert.deepEqual(asked.at(-1), { type: 'chatbox:auth_required', reason: 'expiring' });
    const deadline = Date.now() + 30_000;
    while (!received.some((f) => f.type === 'reauthenticated') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(sent.some((f) => f.type === 'reauth' && f.token === fresh), JSON.stringify(sent));
    assert.ok(received.some((f) => f.type === 'reauthenticated'), JSON.stringify(received));
    // The same socket goes on: still online, no reconnect.
    await chat.locator('[data-testid="connection-status"][data-state="online"]').waitFor(WAIT);
    assert.equal(received.filter((f) => f.type === 'connection_status').length, 1);
    await page.close();
  });

  test('screenshots on a phone (light, dark) and a desktop', T, async () => {
    const url = await chatUrlFor('Jo');
    const conversation = async (page) => {
      await send(page, 'Hi! Can you help me plan a weekend in Lisbon?');
      await answer(page, 1);
      await send(page, 'Thanks. What about **food**: any `pastel de nata` tips?');
      await answer(page, 2);
    };
    const { page: phone } = await openChat({ viewport: 'phone', url });
    await conversation(phone);
    await screenshot(phone, 'chat-phone');
    await assertAccessible(phone, 'chat on a phone, answered');
    await phone.getByTestId('sessions-button').click();
    await phone.getByTestId('session-list').waitFor({ state: 'visible' });
    await phone.locator('[data-testid="session-item"][aria-current="true"]').waitFor();
    const drawerAt = (edge) =>
      phone.waitForFunction((e) => {
        const r = document.getElementById('sidebar').getBoundingClientRect();
        return e === 'open' ? r.left >= 0 : r.right <= 0;
      }, edge);
    await drawerAt('open');
    await screenshot(phone, 'chat-phone-sessions');
    await assertAccessible(phone, 'chat on a phone, conversations open');
    await phone.keyboard.press('Escape');
    await drawerAt('closed');
    await phone.evaluate(() => document.activeElement?.blur());
    await phone.emulateMedia({ colorScheme: 'dark' });
    assert.equal(await phone.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches), true);
    await screenshot(phone, 'chat-phone-dark');
    await assertAccessible(phone, 'chat on a phone, dark');
    assertNoPageErrors(phone);
    await phone.context().close();

    const { page: desktop } = await openChat({ viewport: 'desktop', url });
    await answer(desktop, 2);
    await desktop.getByTestId('file-input').setInputFiles({ name: 'map.png', mimeType: 'image/png', buffer: png(160, 100) });
    await desktop.getByTestId('image-thumbnail').waitFor(WAIT);
    await answer(desktop, 3);
    await desktop.getByTestId('session-list').waitFor({ state: 'visible' });
    await screenshot(desktop, 'chat-desktop');
    await assertAccessible(desktop, 'chat on a desktop, with an image');
    assertNoPageErrors(desktop);
    await desktop.context().close();
  });
});
