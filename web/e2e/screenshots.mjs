// Takes docs/views/*.png: each view of the page at 1280x800 with the real model on the CPU
// device (ranking, the data card with a trained oracle, the Align card after SFT and RosePO and
// its charts, the RosePO adapter ranking next to the base model, the model card with what the
// browser stores, Evaluate with the base model and the RosePO adapter, the loss lab with the
// training step's margins and the pairs' eps), and checks that nothing overflows a 390x844
// phone screen.
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
const long = { timeout: 1_800_000 };
const shoot = async (page, sel, name) => {
  // The card that holds `sel`, scrolled to the top of the viewport.
  await page.locator(sel).evaluate((el) => (el.closest('section') ?? el).scrollIntoView({ block: 'start' }));
  await page.screenshot({ path: path.join(out, `${name}.png`) });
  console.log(`${name}.png`);
};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${origin}/?device=cpu`);
  await page.waitForSelector('#model-info strong', long);
  await page.waitForSelector('#dataset-info strong', long);
  await page.click('#train-oracle');
  await page.waitForSelector('#oracle-result', long);
  await page.click('#test-user-button');
  await page.waitForSelector('#test-user', long);
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', long);
  await shoot(page, '#history', 'recommend');
  await shoot(page, '#data-card', 'data');
  await set(page, '#train-prompts', 4);
  await set(page, '#train-steps', 3);
  await set(page, '#train-accumulation', 1);
  await page.click('#train-start');
  await page.waitForFunction(() => document.querySelector('#train-summary')?.textContent.startsWith('SFT #1'), null, long);
  await page.selectOption('#train-stage', 'preference');
  await page.selectOption('#train-loss', 'rosepo');
  await page.check('#train-strategy-popular');
  await page.click('#train-start');
  await page.waitForFunction(() => document.querySelector('#train-summary')?.textContent.startsWith('RosePO #1'), null, long);
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
  for (const [choice, rows] of [['base', 1], ['1', 2]]) {
    await page.selectOption('#adapter-select', choice);
    await page.waitForFunction(() => !document.querySelector('#eval-run').disabled, null, long);
    await page.click('#eval-run');
    await page.waitForFunction((n) => document.querySelectorAll('#eval-table tbody tr').length === n, rows, long);
  }
  await shoot(page, '#evaluate-card', 'evaluate');
  await shoot(page, '#loss-lab', 'loss-lab');

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
