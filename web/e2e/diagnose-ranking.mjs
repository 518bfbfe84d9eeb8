// Diagnoses the first ranking in the page (docs/benchmarks.md, "an unexplained stall"): every
// console line of page and worker, page errors, and the status texts every 5 s until it shows.
// Usage: node web/e2e/diagnose-ranking.mjs <recalign binary> <dist dir> [query] [seconds] [delay]
// (delay: ms between the model's ready notice and the click; 0 clicks at once)
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';
const [recalign, dist, query = 'device=cpu', limit = '240', delay = '0'] = process.argv.slice(2);
const { origin, stop } = await startServer(recalign, dist, 25000);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: [...chromiumArgs, '--enable-unsafe-webgpu'] });
const t0 = Date.now();
const log = (...a) => console.log(((Date.now() - t0) / 1000).toFixed(1).padStart(6), ...a);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => log('page:', m.type(), m.text().slice(0, 300)));
  page.on('pageerror', (e) => log('pageerror:', e.message.slice(0, 300)));
  page.on('worker', (w) => { log('worker started', w.url()); w.on('console', (m) => log('worker:', m.type(), m.text().slice(0, 300))); w.on('close', () => log('worker closed')); });
  page.on('crash', () => log('page crashed'));
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('#model-info strong', { timeout: 600_000 });
  log('model ready:', (await page.locator('#model-info').innerText()).replace(/\s+/g, ' ').slice(0, 200));
  log('rank enabled:', await page.locator('#rank').isEnabled());
  await new Promise((r) => setTimeout(r, Number(delay)));
  await page.click('#rank', { timeout: 120_000 });
  log('clicked');
  for (let i = 0; i < Number(limit) / 5; i++) {
    if (await page.locator('#ranking tr.candidate').count() > 0) { log('RANKED', await page.locator('#ranking .meta').innerText()); break; }
    const st = await page.evaluate(() => [...document.querySelectorAll('.status, .error, .progress, #data-status, .hint')].map((e) => e.innerText.replace(/\s+/g, ' ').slice(0, 120)).join(' | '));
    log('waiting;', st.slice(0, 400));
    await new Promise((r) => setTimeout(r, 5000));
  }
} finally { await browser.close(); stop(); }
