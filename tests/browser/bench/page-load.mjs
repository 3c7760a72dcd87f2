// Page-load benchmark of the chat page: prints how long a phone on a
// throttled network takes to show the page and to be online (socket open,
// session ready), first visit and repeat visit (cached assets). Numbers
// only, no assertions; results go to docs/BENCHMARKS.md.
//
//   cd tests/browser && node bench/page-load.mjs
//
// Network profiles are Chrome DevTools' "Fast 3G" and "Slow 4G" presets.

import { launchBrowser, newPage, startAllInOne } from '../lib/harness.mjs';

const PROFILES = {
  'fast-3g': { latency: 562.5, downloadThroughput: (1.6 * 1024 * 1024) / 8 * 0.9, uploadThroughput: (750 * 1024) / 8 * 0.9 },
  'slow-4g': { latency: 150, downloadThroughput: (9 * 1024 * 1024) / 8 * 0.9, uploadThroughput: (9 * 1024 * 1024) / 8 * 0.9 },
};
const RUNS = Number(process.env.RUNS || 5);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const stack = await startAllInOne();
const browser = await launchBrowser();
try {
  for (const [name, conditions] of Object.entries(PROFILES)) {
    const first = { shown: [], online: [], bytes: [] };
    const repeat = { shown: [], online: [], bytes: [] };
    for (let i = 0; i < RUNS; i++) {
      const page = await newPage(browser, { viewport: 'phone' });
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', { offline: false, ...conditions });
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
      for (const visit of [first, repeat]) {
        let bytes = 0;
        const count = (e) => (bytes += e.encodedDataLength);
        cdp.on('Network.loadingFinished', count);
        await page.goto('about:blank');
        const start = Date.now();
        await page.goto(`${stack.chatUrl}`, { waitUntil: 'domcontentloaded' });
        await page.getByTestId('composer-input').waitFor({ state: 'visible' });
        const shown = Date.now() - start;
        await page.locator('[data-testid="connection-status"][data-state="online"]').waitFor({ timeout: 30_000 });
        visit.online.push(Date.now() - start);
        visit.shown.push(shown);
        cdp.off('Network.loadingFinished', count);
        visit.bytes.push(bytes);
      }
      await page.context().close();
    }
    for (const [visit, r] of [['first visit', first], ['repeat visit', repeat]]) {
      console.log(
        `${name.padEnd(8)} ${visit.padEnd(12)} shown ${String(median(r.shown)).padStart(5)} ms   online ${String(median(r.online)).padStart(5)} ms   transferred ${String(median(r.bytes)).padStart(6)} B   (median of ${RUNS}, phone viewport, CPU ×4 slower)`,
      );
    }
  }
} finally {
  await browser.close();
  await stack.close();
}
