// Trains the real model in the page and prints the figures: SFT then DPO steps of SmolLM2-135M
// in the worker, with the Align card's settings, and a ranking with the trained adapter. Needs
// the default model in dist/models (`./x build` after `recalign fetch`).
// Usage: node web/e2e/train-real.mjs <recalign binary> <dist dir> [query, default device=cpu]
//        [prompts, default 4] [steps, default 2] [screenshot.png]
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';

const [recalign, dist, query = 'device=cpu', prompts = '4', steps = '2', shot] = process.argv.slice(2);
const { origin, stop } = await startServer(recalign, dist, 20000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [...chromiumArgs, '--enable-unsafe-webgpu'],
});
const set = async (page, sel, v) => { await page.fill(sel, String(v)); await page.locator(sel).dispatchEvent('change'); };
const seconds = (t0) => ((Date.now() - t0) / 1000).toFixed(1);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  page.on('worker', (w) => w.on('console', (m) => { if (/panicked|RuntimeError|memory/i.test(m.text())) console.log(`worker: ${m.text()}`); }));
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('#model-info strong', { timeout: 600_000 });
  await page.waitForSelector('#dataset-info strong', { timeout: 600_000 });
  console.log(`device ${await page.locator('#device').innerText()}; ${await page.locator('#model-info').innerText()}`);
  await set(page, '#train-prompts', prompts);
  await set(page, '#train-steps', steps);
  await set(page, '#train-accumulation', 1);
  const run = async (name) => {
    const t0 = Date.now();
    await page.click('#train-start');
    await page.waitForFunction(
      (n) => document.querySelector('#train-summary')?.textContent.startsWith(n) || document.querySelector('#error'),
      name, { timeout: 3_600_000 });
    const error = await page.locator('#error').count();
    if (error) throw new Error(await page.locator('#error').innerText());
    console.log(`${await page.locator('#train-summary').innerText()} (wall ${seconds(t0)} s)`);
    console.log(await page.locator('#train-log').innerText());
  };
  await run('SFT #1');
  await page.selectOption('#train-stage', 'preference');
  await run('DPO #1');
  const t0 = Date.now();
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 600_000 });
  console.log(`ranking with ${await page.locator('#model-in-use').innerText()}: ${seconds(t0)} s`);
  if (shot) await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
  stop();
}
