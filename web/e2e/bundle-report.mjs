// Reports the release bundle: each file's size raw and gzipped, first paint in headless
// Chromium, and the time from the model's bytes in memory to the first ranking (the worker's
// "ready in" figure plus the first ranking), as JSON.
// Usage: node web/e2e/bundle-report.mjs <recalign binary> <dist dir> [query, default device=cpu]
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [recalign, dist, query = 'device=cpu'] = process.argv.slice(2);
const files = {};
for (const name of fs.readdirSync(dist).sort()) {
  const p = path.join(dist, name);
  if (!fs.statSync(p).isFile()) continue;
  const bytes = fs.readFileSync(p);
  files[name] = { bytes: bytes.length, gzip: zlib.gzipSync(bytes, { level: 9 }).length };
}
const total = (ext) => Object.entries(files).filter(([n]) => n.endsWith(ext))
  .reduce((a, [, f]) => ({ bytes: a.bytes + f.bytes, gzip: a.gzip + f.gzip }), { bytes: 0, gzip: 0 });

const { origin, stop } = await startServer(recalign, dist, 23000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [...chromiumArgs, '--enable-unsafe-webgpu'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const t0 = Date.now();
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('header h1');
  const paint = await page.evaluate(() => Object.fromEntries(
    performance.getEntriesByType('paint').map((e) => [e.name, Math.round(e.startTime)])));
  await page.waitForSelector('#model-info strong', { timeout: 600_000 });
  const loadedMs = Date.now() - t0;
  const info = await page.locator('#model-info').innerText();
  const prepareMs = Number(/ready in ([\d.]+) s/.exec(info)?.[1]) * 1000;
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 600_000 });
  const rankingMs = Number(/in ([\d.]+) s/.exec(await page.locator('#ranking .meta').innerText())?.[1]) * 1000;
  console.log(JSON.stringify({
    files,
    wasm: total('.wasm'),
    js: total('.js'),
    device: await page.locator('#device').innerText(),
    first_paint_ms: paint['first-paint'],
    first_contentful_paint_ms: paint['first-contentful-paint'],
    page_open_to_model_ready_ms: loadedMs,
    model_bytes_to_ready_ms: prepareMs,
    first_ranking_ms: rankingMs,
    model_bytes_to_first_ranking_ms: prepareMs + rankingMs,
  }, null, 2));
} finally {
  await browser.close();
  stop();
}
