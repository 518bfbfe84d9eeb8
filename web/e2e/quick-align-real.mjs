// Runs the Align card's Quick align on the real model in the page and prints what a visitor sees:
// the time it took, the validation HR@1 and AveragePopularity@1 at each check (step 0 is the base
// model), and the card's summary. Needs the default model and ML-100K in dist/ (`./x build` after
// `recalign fetch`). The page starts with the default adapter; Quick align trains from the base
// model either way (its SFT starts from fresh LoRA factors).
// Usage: node web/e2e/quick-align-real.mjs <recalign binary> <dist dir> [query, default device=cpu]
//        [screenshot.png]
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';

const [recalign, dist, query = 'device=cpu', shot] = process.argv.slice(2);
const { origin, stop } = await startServer(recalign, dist, 21000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [...chromiumArgs, '--enable-unsafe-webgpu'],
});
const t0 = Date.now();
const log = (...a) => console.log(`${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s`, ...a);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => log(`page error: ${e.message}`));
  page.on('worker', (w) => w.on('console', (m) => { if (/panicked|RuntimeError|memory/i.test(m.text())) log(`worker: ${m.text()}`); }));
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('#model-info strong', { timeout: 600_000 });
  await page.waitForSelector('#dataset-info strong', { timeout: 600_000 });
  log(`device ${await page.locator('#device').innerText()}; ${(await page.locator('#model-info').innerText()).replace(/\s+/g, ' ')}`);
  const started = Date.now();
  await page.click('#quick-align-start', { timeout: 120_000 });
  let last = '';
  for (;;) {
    const done = await page.locator('#train-validation-result, #error').count();
    if (done) break;
    const progress = await page.locator('#train-progress').innerText().catch(() => '');
    const line = progress.replace(/\s+/g, ' ').slice(0, 160);
    if (line !== last) { log(line); last = line; }
    await new Promise((r) => setTimeout(r, 30_000));
  }
  if (await page.locator('#error').count()) throw new Error(await page.locator('#error').innerText());
  log(`Quick align took ${((Date.now() - started) / 1000).toFixed(0)} s (wall, from the click)`);
  log(await page.locator('#train-summary').innerText());
  log(await page.locator('#train-validation-result').innerText());
  for (const id of ['#train-chart-hr1', '#train-chart-avgpop']) {
    const values = await page.locator(id).getAttribute('data-values').catch(() => null);
    if (values) log(`${id}: ${values}`);
  }
  if (shot) await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
  stop();
}
