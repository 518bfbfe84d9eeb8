// Takes the README's screenshot: the built page with the real model, after one ranking.
// Usage: node web/e2e/screenshot.mjs <recalign binary> <dist dir> <out.png> [query, e.g. device=cpu]
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';

const [recalign, dist, out, query = ''] = process.argv.slice(2);
const { origin, stop } = await startServer(recalign, dist, 19000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [...chromiumArgs, '--enable-unsafe-webgpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const t0 = Date.now();
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('#model-info strong', { timeout: 600_000 });
  const tLoaded = Date.now();
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 600_000 });
  const tRanked = Date.now();
  console.log(`device ${await page.locator('#device').innerText()}; model ready ${(tLoaded - t0) / 1000} s; ranking ${(tRanked - tLoaded) / 1000} s`);
  console.log(await page.locator('#model-info').innerText());
  console.log(await page.locator('#ranking .meta').innerText());
  await page.screenshot({ path: out, fullPage: true });
} finally {
  await browser.close();
  stop();
}
