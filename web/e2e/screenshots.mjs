// Takes docs/views/*.png: each view of the page at 1280x800 with the real model on the CPU
// device (all cores when the page is cross-origin isolated, as `recalign serve` makes it). It runs
// the page as a class would: the SASRec oracle, then "Align in four steps" (a test user, the base
// ranking, Quick SFT, RosePO, the three side by side), and shoots what that leaves: the
// walk-through's last step, the RosePO adapter's ranking with the user's real next title marked,
// the whole-catalogue top 10, the Align card and its charts, RosePO next to the base model, the
// model card with what the browser stores, Evaluate with the base model and RosePO, the loss lab
// and its overlay, the ranking in dark mode; then checks that nothing overflows a 390x844 phone
// screen. Nothing is pre-recorded; the whole run takes some 20-30 minutes on 2 cores.
// Usage: node web/e2e/screenshots.mjs <recalign binary> <dist dir> <out dir>
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [recalign, dist, out] = process.argv.slice(2);
fs.mkdirSync(out, { recursive: true });
const { origin, stop } = await startServer(recalign, dist, 22000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: chromiumArgs,
});
const set = async (page, sel, v) => { await page.fill(sel, String(v)); await page.locator(sel).dispatchEvent('change'); };
const long = { timeout: 3_600_000 };
const t0 = Date.now();
const shoot = async (page, sel, name, { card = true } = {}) => {
  // The card that holds `sel` (or, with `card: false`, `sel` itself), scrolled to the top.
  await page.locator(sel).evaluate((el, card) => ((card && el.closest('section')) || el).scrollIntoView({ block: 'start' }), card);
  await page.screenshot({ path: path.join(out, `${name}.png`) });
  console.log(`${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s  ${name}.png`);
};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(`${origin}/?device=cpu`);
  await page.waitForSelector('#model-info strong', long);
  await page.waitForSelector('#dataset-info strong', long);
  console.log(`device: ${await page.locator('#device').innerText()}`);
  await page.click('#train-oracle');
  await page.waitForSelector('#oracle-result', long);
  await shoot(page, '#data-card', 'data');

  // Align in four steps, to its last step.
  await page.click('#walk-start');
  await page.waitForFunction(() => document.querySelectorAll('#walk-results tr.walk-model').length === 3
    || document.querySelector('#walk-stopped'), null, long);
  if (await page.locator('#walk-stopped').count()) throw new Error(await page.locator('#walk-stopped').innerText());
  await shoot(page, '#walkthrough', 'walkthrough');
  await shoot(page, '#history', 'recommend');
  await page.click('#recommend-catalogue');
  await page.waitForSelector('#catalogue-recommendations tr.recommended', long);
  await shoot(page, '#catalogue-recommendations', 'catalogue');
  await shoot(page, '#align-card', 'align');
  await shoot(page, '#training', 'align-charts');

  // The RosePO adapter's ranking next to the base model's.
  await page.selectOption('#compare-select', 'base');
  await page.click('#rank');
  await page.waitForSelector('#ranking td.compare-score', long);
  await shoot(page, '#ranking', 'compare');
  await shoot(page, '#model-card', 'storage');

  // Evaluate: the base model and the RosePO adapter on the same 10 validation users.
  await set(page, '#eval-users', 10);
  for (const [label, rows] of [['base model', 1], ['RosePO #1', 2]]) {
    await page.selectOption('#adapter-select', { label });
    await page.waitForFunction(() => !document.querySelector('#eval-run').disabled, null, long);
    await page.click('#eval-run');
    await page.waitForFunction((n) => document.querySelectorAll('#eval-table tbody tr').length === n, rows, long);
  }
  await shoot(page, '#evaluate-card', 'evaluate');
  await shoot(page, '#loss-lab', 'loss-lab');
  await shoot(page, '#lab-overlay', 'loss-lab-overlay', { card: false });

  // The same page in dark mode (prefers-color-scheme), ranking again (Evaluate's adapter
  // switches cleared the last ranking).
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', long);
  await shoot(page, '#history', 'dark');
  await page.emulateMedia({ colorScheme: 'light' });

  // A phone: nothing may stick out to the right of the 390 px viewport.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > width + 1 && !el.closest('table.steps, .scroll'))
      .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}`);
    return { scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10) };
  });
  console.log(`390x844: page ${overflow.scrollWidth} px wide in a ${overflow.width} px viewport; overflowing: ${overflow.wide.join(', ') || 'none'}`);
  await page.screenshot({ path: path.join(out, 'phone.png'), fullPage: false });
  if (overflow.scrollWidth > overflow.width || overflow.wide.length) process.exitCode = 1;
} finally {
  await browser.close();
  stop();
}
