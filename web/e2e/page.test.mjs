// Page tests: the built page (dist/) served by `recalign serve`, driven in the system's headless
// Chromium. The model is the tiny deterministic GGUF (`recalign write-fixture`), so the real
// loading, WebGPU and worker code runs quickly on a software adapter.
//
// Usage: node web/e2e/page.test.mjs <path to recalign binary> <dist dir>   (ONLY='<words>|<words>': a subset)
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { startServer, chromiumArgs } from './serve.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';

const [recalign, dist] = process.argv.slice(2);
if (!recalign || !dist) {
  console.error('usage: node page.test.mjs <recalign binary> <dist dir>');
  process.exit(2);
}

// Fixtures next to the page: a good tiny model, a truncated copy and a file that is not GGUF.
const models = path.join(dist, 'models');
fs.mkdirSync(models, { recursive: true });
const tinyPath = path.join(models, 'tiny.gguf');
execFileSync(recalign, ['write-fixture', '--out', tinyPath, '--adapter', path.join(models, 'tiny-adapter.safetensors')]);
const tiny = fs.readFileSync(tinyPath);
fs.writeFileSync(path.join(models, 'truncated.gguf'), tiny.subarray(0, Math.floor(tiny.length / 2)));
const notModel = path.join(models, 'not-a-model.gguf');
fs.writeFileSync(notModel, 'PK\x03\x04 this is a zip, not a model');

const { origin, stop } = await startServer(recalign, dist, 18000);

const requests = [];
const problems = [];
const results = [];

async function withPage(webgpu, fn, viewport = { width: 1280, height: 800 }) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: webgpu ? [...chromiumArgs, '--enable-unsafe-webgpu'] : chromiumArgs,
  });
  try {
    const context = await browser.newContext({ viewport });
    context.on('request', (r) => requests.push(r.url()));
    const page = await context.newPage();
    // Every main-thread task over 50 ms (the Long Tasks API), to measure responsiveness while the
    // worker trains.
    await page.addInitScript(() => {
      window.__longest = 0;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (/panicked|RuntimeError|unreachable/.test(m.text())) problems.push(`console: ${m.text()}`); });
    page.on('worker', (w) => w.on('console', (m) => { if (/panicked|RuntimeError|unreachable/.test(m.text())) problems.push(`worker: ${m.text()}`); }));
    await fn(page);
  } finally {
    await browser.close();
  }
}

async function test(name, webgpu, fn, viewport) {
  // ONLY=<words> runs the tests whose name contains them (while developing; CI runs all).
  if (process.env.ONLY && !process.env.ONLY.split('|').some((w) => name.includes(w))) return;
  const t0 = Date.now();
  try {
    await withPage(webgpu, fn, viewport);
    results.push(`ok    ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push(`FAIL  ${name}: ${e.message}`);
  }
  console.log(results[results.length - 1]);
}

const ready = (page) => page.waitForSelector('#model-info strong', { timeout: 120_000 });
const text = (page, sel) => page.locator(sel).innerText();

// Sets a text field the way a user does (typing, then leaving it), so yew's onchange runs.
async function setField(page, sel, value) {
  await page.fill(sel, String(value));
  await page.locator(sel).dispatchEvent('change');
}
// Title -> score of the ranking on the page.
async function rankingScores(page) {
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 120_000 });
  const titles = await page.locator('#ranking td.title').allInnerTexts();
  const scores = (await page.locator('#ranking td.score').allInnerTexts()).map(Number);
  return Object.fromEntries(titles.map((t, i) => [t, scores[i]]));
}
const series = async (page, id) =>
  (await page.locator(id).getAttribute('data-values')).split(',').map(Number);
// Runs the Align card with its current settings and waits for the run to end.
async function trainAndWait(page, name) {
  await page.click('#train-start');
  await page.waitForFunction(
    (n) => document.querySelector('#train-summary')?.textContent.startsWith(n),
    name, { timeout: 600_000 });
  return text(page, '#train-summary');
}

await test('loads the model on WebGPU, ranks 20 candidates, generates', true, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf&device=webgpu`);
  await ready(page);
  assert.equal(await text(page, '#device'), 'WebGPU');
  assert.match(await text(page, '#model-info'), /tiny\.gguf/);
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 120_000 });
  const rows = page.locator('#ranking tr.candidate');
  assert.equal(await rows.count(), 20);
  const scores = (await page.locator('#ranking td.score').allInnerTexts()).map(Number);
  assert.ok(scores.every(Number.isFinite), `scores ${scores}`);
  assert.deepEqual([...scores].sort((a, b) => b - a), scores, 'ranked best first');
  await page.click('#generate');
  await page.waitForSelector('#generation blockquote', { timeout: 120_000 });
  assert.match(await text(page, '#generation .meta'), /valid/i);
});

await test('a default adapter is loaded with the model and ranks in its own prompt; the base model is one click away; a missing one is reported', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf&adapter=models/tiny-adapter.safetensors`);
  await ready(page);
  await page.waitForSelector('#use-base', { timeout: 60_000 });
  assert.match(await text(page, '#model-in-use'), /tiny-adapter/);
  assert.match(await text(page, '#default-adapter'), /default adapter/);
  const adapted = await rankingScores(page);
  assert.equal(Object.keys(adapted).length, 20);
  await page.click('#use-base');
  await page.waitForFunction(() => document.querySelector('#model-in-use').textContent.includes('base model'));
  await page.waitForSelector('#use-default');
  const base = await rankingScores(page);
  assert.notDeepEqual(base, adapted, 'the adapter (compact prompt, non-zero factors) changes the scores');
  await page.click('#use-default');
  await page.waitForFunction(() => document.querySelector('#model-in-use').textContent.includes('tiny-adapter'));

  await page.goto(`${origin}/?model=models/tiny.gguf&adapter=models/no-such-adapter.safetensors`);
  await ready(page);
  // The hint reads "Loading…" until the 404 comes back, later on a busy machine.
  await page.waitForFunction(() => document.querySelector('#default-adapter')?.textContent.includes('not loaded'), null, { timeout: 60_000 });
  assert.match(await text(page, '#default-adapter'), /not loaded, so the base model ranks/);
  assert.match(await text(page, '#model-in-use'), /base model/);
});

await test('a ranking asked for while the default adapter is still loading is made with the adapter and stays', false, async (page) => {
  // The adapter's download held back, as on a slow network: the page used to rank with the base
  // model and then clear that ranking when the adapter arrived, so a first click showed nothing.
  const held = [];
  await page.context().route('**/tiny-adapter.safetensors', async (route) => {
    held.push(route.request().method());
    await new Promise((r) => setTimeout(r, 5000));
    await route.continue();
  });
  await page.goto(`${origin}/?model=models/tiny.gguf&adapter=models/tiny-adapter.safetensors`);
  await ready(page);
  await page.waitForFunction(() => document.querySelector('#default-adapter')?.textContent.includes('Loading the default adapter'), null, { timeout: 30_000 });
  assert.equal(await page.locator('#rank').isEnabled(), false, 'Rank waits for the default adapter');
  await page.click('#rank', { timeout: 60_000 }); // as soon as it is enabled
  await page.waitForSelector('#ranking tr.candidate', { timeout: 120_000 });
  assert.ok(held.includes('GET'), `the adapter's download went through the held route (${held})`);
  assert.match(await text(page, '#model-in-use'), /tiny-adapter/);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await page.locator('#ranking tr.candidate').count(), 20, 'the ranking stays on the page');
});

await test('Quick align runs sequence SFT in the compact prompt, validates before, midway and after, and ranks with the adapter', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await ready(page);
  await page.click('#quick-align-start');
  await page.waitForSelector('#train-validation-result, #error', { timeout: 300_000 }).catch(async (e) => {
    throw new Error(`${e.message}; progress: ${await page.locator('#train-progress').innerText().catch(() => '-')}`);
  });
  if (await page.locator('#error').count()) throw new Error(await text(page, '#error'));
  assert.match(await text(page, '#train-summary'), /SFT #1: finished 48 of 48 steps .* on \d+ examples/);
  assert.match(await text(page, '#train-validation-result'), /at step 0 → [\d.]+ at step 48/);
  assert.equal(await page.locator('#train-prompt').inputValue(), 'compact');
  assert.equal(await page.locator('#train-top-layers').inputValue(), '2', 'the tiny model has 2 layers');
  assert.match(await text(page, '#model-in-use'), /SFT #1/);
  const scores = await rankingScores(page);
  assert.equal(Object.keys(scores).length, 20);
});

await test('with only a software WebGPU adapter the page picks the CPU and says why', true, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  assert.match(await text(page, '#device'), /^CPU · \d+ threads?$/);
  assert.match(await text(page, '#device-note'), /software renderer/);
});

await test('a prompt longer than the context is refused with a clear message', true, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.fill('#history', Array.from({ length: 400 }, (_, i) => `A very long movie title number ${i}`).join('\n'));
  await page.click('#rank');
  await page.waitForSelector('#error', { timeout: 60_000 });
  assert.match(await text(page, '#error'), /context is 1024 tokens; shorten the history/);
});

await test('a truncated model file is reported, not a crash', true, async (page) => {
  await page.goto(`${origin}/?model=models/truncated.gguf`);
  await page.waitForSelector('#error', { timeout: 60_000 });
  assert.match(await text(page, '#error'), /truncated/);
});

await test('a missing model file is reported with what to do', true, async (page) => {
  await page.goto(`${origin}/?model=models/missing.gguf`);
  await page.waitForSelector('#error', { timeout: 60_000 });
  assert.match(await text(page, '#error'), /HTTP 404.*recalign fetch/);
});

await test('a non-GGUF file picked or dropped by the user is refused and the loaded model is kept', true, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf&device=webgpu`);
  await ready(page);
  await page.setInputFiles('#model-file', notModel);
  await page.waitForSelector('#error', { timeout: 60_000 });
  assert.match(await text(page, '#error'), /not a GGUF file/);
  await page.click('#error button');
  // The same file dropped on the model card.
  const drop = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['PK\x03\x04 this is a zip, not a model'], 'dropped.gguf'));
    return dt;
  });
  await page.dispatchEvent('#model-card', 'drop', { dataTransfer: drop });
  await page.waitForSelector('#error', { timeout: 60_000 });
  assert.match(await text(page, '#error'), /dropped\.gguf.*not a GGUF file/);
  assert.match(await text(page, '#model-info'), /tiny\.gguf/);
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 120_000 });
});

await test('without WebGPU the page says so and ranks on the CPU', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  assert.match(await text(page, '#device'), /^CPU · \d+ threads?$/);
  assert.match(await text(page, '#device-note'), /WebGPU is not available/);
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 120_000 });
});

await test('served cross-origin isolated, the CPU device runs on every core (the multi-threaded build) and ranks as the single-thread build does', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf&device=cpu&adapter=none`);
  await ready(page);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'COOP/COEP from recalign serve');
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.equal(await text(page, '#device'), cores > 1 ? `CPU · ${cores} threads` : 'CPU · 1 thread');
  const threaded = await rankingScores(page);
  // ?threads=1 keeps the single-thread build, the fallback for pages that are not isolated.
  await page.goto(`${origin}/?model=models/tiny.gguf&device=cpu&adapter=none&threads=1`);
  await ready(page);
  assert.equal(await text(page, '#device'), 'CPU · 1 thread');
  const single = await rankingScores(page);
  assert.deepEqual(Object.keys(threaded).sort(), Object.keys(single).sort());
  // Threads split sums differently (last bits): the shown scores (3 decimals) agree within a
  // rounding step or two.
  for (const [title, s] of Object.entries(single)) {
    assert.ok(Math.abs(threaded[title] - s) <= 0.002, `${title}: ${threaded[title]} threaded, ${s} single`);
  }
});

await test('ML-100K loads with its split, SASRec trains on the CPU and beats popularity, a test user fills the form, RosePO trains with the oracle', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  const info = await text(page, '#dataset-info');
  assert.match(info, /ml-100k\.inter/);
  assert.match(info, /943 users \(train 754, validation 94, test 95\)/);
  await ready(page);
  await setField(page, '#train-prompts', 4);
  await setField(page, '#train-validate', 0);
  await setField(page, '#train-steps', 2);
  await setField(page, '#train-accumulation', 1);
  await page.selectOption('#train-stage', 'preference');
  await page.selectOption('#train-loss', 'rosepo');
  // RosePO smooths with the SASRec oracle: with none trained yet, the worker trains it first
  // (its result shows in the Data card), then the pairs.
  await page.click('#train-start');
  await page.waitForSelector('#oracle-result', { timeout: 600_000 });
  const first = await page.waitForFunction(() => document.querySelector('#train-summary')?.textContent.startsWith('RosePO #1')
    ? document.querySelector('#train-summary').textContent : null, null, { timeout: 600_000 });
  assert.match(await first.jsonValue(), /finished 2 of 2 steps/);
  const cells = await page.locator('#oracle-result tbody tr').allInnerTexts();
  const hr1 = (row) => Number(row.split('\t')[1]);
  const [sasrec, popularity, random] = cells.map(hr1);
  const summary = await text(page, '#oracle-result p');
  console.log(`      ${summary} HR@1: SASRec ${sasrec}, popularity ${popularity}, random ${random}`);
  assert.equal(random, 0.05);
  assert.ok(sasrec > popularity + 0.05, `SASRec ${sasrec} vs popularity ${popularity}`);
  await page.click('#test-user-button');
  await page.waitForSelector('#test-user', { timeout: 30_000 });
  assert.match(await text(page, '#test-user'), /Test user #1/);
  const history = await page.locator('#history').inputValue();
  const candidates = await page.locator('#candidates').inputValue();
  assert.ok(history.split('\n').length >= 3, history);
  assert.equal(candidates.split('\n').length, 20);
  // Ranked, the user's real next item is marked among the candidates, and only it.
  const picked = (await text(page, '#test-user')).match(/they actually chose “(.*)”/)[1];
  await rankingScores(page);
  const marked = await page.locator('#ranking tr.chosen td.title').allInnerTexts();
  assert.deepEqual(marked, [picked]);
  // Each candidate shows its training popularity; the toggle colours exactly the tail ones.
  const counts = await page.locator('#ranking tr.candidate td.pop').evaluateAll((cs) => cs.map((c) => Number(c.dataset.count)));
  assert.equal(counts.length, 20);
  assert.ok(counts.every((n) => Number.isInteger(n) && n >= 0) && counts.some((n) => n > 0), `popularity ${counts}`);
  assert.equal(await page.locator('#ranking tr.tail').count(), 0);
  await page.check('#tail-toggle');
  const floor = Number((await text(page, '#ranking label')).match(/fewer than (\d+) training/)[1]);
  assert.equal(await page.locator('#ranking tr.tail').count(), counts.filter((n) => n < floor).length);
  // The whole catalogue: ten titles, none from the history, each with its training popularity.
  await page.click('#recommend-catalogue');
  await page.waitForSelector('#catalogue-recommendations tr.recommended', { timeout: 300_000 });
  const top = await page.locator('#catalogue-recommendations tr.recommended td.title').allInnerTexts();
  assert.equal(top.length, 10);
  assert.equal(new Set(top).size, 10);
  const seen = new Set(history.split('\n').map((t) => t.trim()));
  assert.ok(top.every((t) => !seen.has(t)), `${top} vs ${[...seen]}`);
  const topCounts = await page.locator('#catalogue-recommendations td.pop').evaluateAll((cs) => cs.map((c) => Number(c.dataset.count)));
  assert.ok(topCounts.length === 10 && topCounts.every((n) => Number.isInteger(n) && n >= 0), `${topCounts}`);
  const scores = (await page.locator('#catalogue-recommendations td.score').allInnerTexts()).map(Number);
  assert.ok(scores.every((v, i) => i === 0 || v <= scores[i - 1]), `best first: ${scores}`);
  console.log(`      ${await text(page, '#catalogue-recommendations p.meta')}`);
  // The catalogue search adds a title to the history.
  await page.fill('#catalogue-search', 'star wars');
  await page.waitForSelector('#catalogue-hits .catalogue-hit', { timeout: 10_000 });
  const hit = (await page.locator('#catalogue-hits .catalogue-hit').first().innerText()).replace(/^\+ /, '');
  assert.match(hit, /Star Wars/i);
  await page.locator('#catalogue-hits .catalogue-hit').first().click();
  const lines = (await page.locator('#history').inputValue()).split('\n');
  assert.equal(lines[lines.length - 1], hit);
  assert.equal(lines.length, history.split('\n').length + 1);
  // RosePO again: each pair smoothed by the oracle trained for the first run.
  const rosepo = await trainAndWait(page, 'RosePO #2');
  console.log(`      ${rosepo}`);
  assert.match(rosepo, /finished 2 of 2 steps in [\d.]+ s on \d+ pairs \(from the base model\)/);
  const loss = await series(page, '#train-chart-loss');
  assert.ok(loss.length === 2 && loss.every(Number.isFinite), `RosePO loss ${loss}`);
  // The loss lab shows the distribution of the oracle's smoothing factors of these pairs.
  const eps = (await page.locator('#rosepo-eps').getAttribute('data-values')).split(',').map(Number);
  assert.ok(eps.length >= 4 && eps.every((e) => e >= 0 && e <= 0.4), `eps ${eps}`);
  const bars = await page.locator('#rosepo-eps .bar').evaluateAll((bs) => bs.map((b) => Number(b.dataset.count)));
  assert.equal(bars.reduce((a, b) => a + b, 0), eps.length);
  console.log(`      RosePO eps of ${eps.length} pairs: mean ${(eps.reduce((a, b) => a + b, 0) / eps.length).toFixed(3)}`);
  // LLaRA's hybrid item tokens: SFT with the oracle's item vectors, then the test user (titles of
  // the dataset, so each has its item) ranked with the hybrid adapter.
  await page.selectOption('#train-stage', 'sft');
  await page.selectOption('#train-prompt', 'compact');
  await page.selectOption('#train-hybrid', 'hybrid');
  const hybrid = await trainAndWait(page, 'SFT #1');
  console.log(`      ${hybrid}`);
  assert.match(hybrid, /finished 2 of 2 steps/);
  assert.match(await text(page, '#model-in-use'), /SFT #1/);
  const hybridScores = await rankingScores(page);
  assert.equal(Object.keys(hybridScores).length, 20);
  assert.ok(Object.values(hybridScores).every(Number.isFinite));
});

await test('a malformed dataset picked or dropped by the user is refused by line and the loaded one is kept', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await page.setInputFiles('#data-files', [
    { name: 'ratings.csv', mimeType: 'text/csv', buffer: Buffer.from('user,item,timestamp\nu,1,5\nu,2,yesterday\n') },
    { name: 'items.csv', mimeType: 'text/csv', buffer: Buffer.from('id,title\n1,Heat\n2,Casino\n') },
  ]);
  await page.waitForSelector('#error', { timeout: 30_000 });
  assert.match(await text(page, '#error'), /interactions, line 3: field "timestamp" is not a number: "yesterday"/);
  assert.match(await text(page, '#dataset-info'), /ml-100k\.inter/);
  // A CSV without the needed columns, dropped on the card.
  await page.click('#error button');
  const drop = await page.evaluateHandle(() => {
    const dt = new DataTransfer();
    dt.items.add(new File(['user,item\nu,1\n'], 'ratings.csv', { type: 'text/csv' }));
    dt.items.add(new File(['id,title\n1,Heat\n'], 'items.csv', { type: 'text/csv' }));
    return dt;
  });
  await page.dispatchEvent('#data-card', 'drop', { dataTransfer: drop });
  await page.waitForSelector('#error', { timeout: 30_000 });
  assert.match(await text(page, '#error'), /interactions, line 1: missing column "timestamp"/);
  assert.match(await text(page, '#dataset-info'), /ml-100k\.inter/);
});

await test("the papers' files as they are: LLaRA's LastFM rows with id2name and S-DPO's validation entries load as the split; a test user comes from the held-out rows", false, async (page) => {
  const shared = [path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../shared/data'), '/work/shared/data']
    .find((d) => fs.existsSync(path.join(d, 'llara-lastfm/train_data.jsonl')));
  assert.ok(shared, "the papers' files in ../shared/data");
  const rows = fs.readFileSync(path.join(shared, 'llara-lastfm/train_data.jsonl'), 'utf8').split('\n').slice(0, 120).join('\n') + '\n';
  const val = JSON.parse(fs.readFileSync(path.join(shared, 'sdpo-lastfm/lastfm-val.json'), 'utf8')).slice(0, 4);
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await page.selectOption('#data-domain', 'music');
  await page.setInputFiles('#data-files', [
    { name: 'train_data.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(rows) },
    { name: 'id2name.txt', mimeType: 'text/plain', buffer: fs.readFileSync(path.join(shared, 'llara-lastfm/id2name.txt')) },
    { name: 'lastfm-val.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(val)) },
  ]);
  await page.waitForFunction(() => document.querySelector('#dataset-info strong')?.textContent === 'train_data.jsonl', null, { timeout: 60_000 });
  const info = await text(page, '#dataset-info');
  // 120 rows: the users' cold-start rows are skipped, the 4 S-DPO entries are the validation examples.
  assert.match(info, /examples \d+ \/ 4 \/ 0/, info);
  assert.match(info, /cold-start rows without history skipped/, info);
  await page.click('#test-user-button');
  await page.waitForSelector('#test-user', { timeout: 30_000 });
  const chose = val.map((v) => v.trueSelection);
  const said = await text(page, '#test-user');
  assert.ok(chose.some((t) => said.includes(t)), said);
});

await test('the worker trains LoRA SFT then DPO on WebGPU (5 steps each); ranking uses the adapter; pause, resume and cancel; the main thread stays responsive', true, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf&device=webgpu`);
  await ready(page);
  assert.equal(await text(page, '#device'), 'WebGPU');
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  const base = await rankingScores(page);
  // Two prompts in one batch: every SFT step sees the same batch, so its loss must fall.
  await setField(page, '#train-prompts', 2);
  await setField(page, '#train-steps', 5);
  await setField(page, '#train-batch', 2);
  await setField(page, '#train-accumulation', 1);
  await setField(page, '#train-lr', 0.02);
  await setField(page, '#train-validate', 5);
  // One user per check: on SwiftShader each ranking costs seconds, and the checks' numbers are
  // asserted only for range (Quick align's test checks validation at its real size on the CPU).
  await setField(page, '#train-validate-users', 1);
  await page.evaluate(() => { window.__longest = 0; });
  const sft = await trainAndWait(page, 'SFT #1');
  console.log(`      ${sft}`);
  assert.match(sft, /finished 5 of 5 steps in/);
  const sftLoss = await series(page, '#train-chart-loss');
  console.log(`      SFT loss ${sftLoss.map((v) => v.toFixed(4))}`);
  assert.equal(sftLoss.length, 5);
  assert.ok(sftLoss.every(Number.isFinite) && sftLoss[4] < sftLoss[0], `SFT loss ${sftLoss}`);
  assert.match(await text(page, '#model-in-use'), /SFT #1/);
  // Validation HR@1 and AveragePopularity@1 before the first step and after the last.
  const hr1 = await series(page, '#train-chart-hr1');
  const avgPop = await series(page, '#train-chart-avgpop');
  console.log(`      validation at steps 0 and 5: HR@1 ${hr1}, AvgPop@1 ${avgPop.map((v) => v.toFixed(1))}`);
  assert.equal(hr1.length, 2);
  assert.ok(hr1.every((v) => v >= 0 && v <= 1) && avgPop.every((v) => v > 0), `${hr1} ${avgPop}`);
  assert.match(await text(page, '#train-validation'), /Checked at steps 0, 5/);
  await setField(page, '#train-validate', 0);

  await page.selectOption('#train-stage', 'preference');
  await page.selectOption('#train-loss', 'dpo');
  await page.check('#train-strategy-popular');
  await setField(page, '#train-batch', 1);
  const dpo = await trainAndWait(page, 'DPO #1');
  console.log(`      ${dpo}`);
  assert.match(dpo, /finished 5 of 5 steps in [\d.]+ s on \d+ pairs \(from SFT #1\)/);
  const dpoLoss = await series(page, '#train-chart-loss');
  const margin = await series(page, '#train-chart-margin');
  console.log(`      DPO loss ${dpoLoss.map((v) => v.toFixed(4))}, margin ${margin.map((v) => v.toFixed(4))}`);
  // The policy starts equal to its reference (the SFT adapter): margin 0, loss ln 2.
  assert.ok(Math.abs(dpoLoss[0] - Math.LN2) < 1e-4, `first DPO loss ${dpoLoss[0]}`);
  assert.equal(dpoLoss.length, 5);
  assert.ok(dpoLoss.every(Number.isFinite) && margin.every(Number.isFinite));
  assert.ok(dpoLoss[4] < dpoLoss[0] && margin[4] > margin[0], `DPO loss ${dpoLoss}, margin ${margin}`);
  // The other live charts: rewards, pair accuracy, learning rate, tokens/s, one value per step.
  for (const id of ['#train-chart-chosen', '#train-chart-rejected', '#train-chart-acc', '#train-chart-lr', '#train-chart-tps']) {
    const v = await series(page, id);
    assert.ok(v.length === 5 && v.every(Number.isFinite), `${id}: ${v}`);
  }
  const lr = await series(page, '#train-chart-lr');
  assert.ok(lr[4] < lr[1] && lr[4] >= 0, `warm-up then cosine decay: ${lr}`);
  const chosen = await series(page, '#train-chart-chosen');
  const rejected = await series(page, '#train-chart-rejected');
  assert.ok(chosen[4] - rejected[4] > chosen[0] - rejected[0], 'chosen rewards pull away from rejected');
  // The loss lab marks the last step's margins, each example's and their mean, on DPO's curve.
  const marks = (await page.locator('#lab-dpo circle.batch-example').evaluateAll((cs) => cs.map((c) => Number(c.dataset.margin))));
  assert.equal(marks.length, 1, 'batch 1, no accumulation: one example per step');
  assert.ok(Math.abs(marks[0] - margin[4]) < 1e-4, `marked ${marks} vs margin ${margin[4]}`);
  assert.equal(await page.locator('#lab-dpo circle.batch').count(), 1);
  const longest = await page.evaluate(() => window.__longest);
  console.log(`      longest main-thread task while SFT and DPO trained: ${longest ? `${longest.toFixed(0)} ms` : 'none over 50 ms'}`);
  // Reported, not asserted: on a 2-core machine the software WebGPU adapter and the worker can
  // starve the page's thread, which a timing assertion would turn into flakiness.

  const aligned = await rankingScores(page);
  const moved = Object.keys(base).filter((t) => Math.abs(base[t] - aligned[t]) > 1e-3);
  assert.ok(moved.length > 0, 'the adapter changes the scores');
  // Side by side: DPO #1 next to the base model, whose column must be the base scores.
  await page.selectOption('#compare-select', 'base');
  await page.click('#rank');
  await page.waitForSelector('#ranking td.compare-score', { timeout: 120_000 });
  const titles = await page.locator('#ranking td.title').allInnerTexts();
  const mine = (await page.locator('#ranking td.score').allInnerTexts()).map(Number);
  const theirs = (await page.locator('#ranking td.compare-score').allInnerTexts()).map(Number);
  titles.forEach((t, i) => {
    assert.ok(Math.abs(mine[i] - aligned[t]) < 1e-3, `${t}: ${mine[i]} vs ${aligned[t]}`);
    assert.ok(Math.abs(theirs[i] - base[t]) < 1e-3, `${t} with the base model: ${theirs[i]} vs ${base[t]}`);
  });
  await page.selectOption('#compare-select', 'none');
  await page.selectOption('#adapter-select', 'base');
  await page.waitForFunction(() => document.querySelector('#model-in-use').textContent.includes('base model'));
  const again = await rankingScores(page);
  for (const t of Object.keys(base)) assert.ok(Math.abs(base[t] - again[t]) < 1e-3, `${t}: ${base[t]} vs ${again[t]}`);

  await page.selectOption('#train-stage', 'sft');
  await setField(page, '#train-steps', 500);
  await page.click('#train-start');
  await page.waitForFunction(() => /step [1-9]\d* of 500/.test(document.querySelector('#train-progress')?.textContent ?? ''), null, { timeout: 300_000 });
  // Pause holds between steps (the step under way finishes first; "paused" shows once the worker
  // holds), resume goes on.
  const stepsDone = () => page.evaluate(() => Number(/step (\d+) of 500/.exec(document.querySelector('#train-progress').textContent)[1]));
  await page.click('#train-pause');
  await page.waitForFunction(() => document.querySelector('#train-progress').textContent.endsWith(' · paused'), null, { timeout: 300_000 });
  const held = await stepsDone();
  await page.waitForTimeout(12_000);
  assert.equal(await stepsDone(), held, 'no step runs while paused');
  assert.equal(await text(page, '#train-pause'), 'Resume');
  await page.click('#train-pause');
  await page.waitForFunction((n) => Number(/step (\d+) of 500/.exec(document.querySelector('#train-progress').textContent)?.[1]) > n, held, { timeout: 300_000 });
  await page.click('#train-cancel');
  await page.waitForFunction(() => document.querySelector('#train-summary')?.textContent.startsWith('SFT #2'), null, { timeout: 300_000 });
  const cancelled = await text(page, '#train-summary');
  console.log(`      ${cancelled}`);
  assert.match(cancelled, /cancelled after \d+ of 500 steps/);
  const options = await page.locator('#adapter-select option').allInnerTexts();
  assert.deepEqual(options, ['base model', 'SFT #1', 'DPO #1', 'SFT #2']);
});

await test('a reload resumes training from its last checkpoint; the model, adapters and runs survive it', true, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf&device=webgpu`);
  await ready(page);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await page.waitForFunction(() => /1 model/.test(document.querySelector('#storage-info')?.textContent ?? ''), null, { timeout: 60_000 });
  await setField(page, '#train-prompts', 2);
  await setField(page, '#train-validate', 0);
  await setField(page, '#train-steps', 3);
  await setField(page, '#train-batch', 1);
  await setField(page, '#train-accumulation', 1);
  await setField(page, '#train-lr', 0.02);
  await setField(page, '#train-checkpoint', 1);
  // An uninterrupted run: the reference for the resumed one (same seed, same data).
  await trainAndWait(page, 'SFT #1');
  const full = await series(page, '#train-chart-loss');
  const withSft = await rankingScores(page);
  // The same run again, interrupted by a reload during its third and last step (3 steps: on
  // SwiftShader each takes about a minute).
  await page.click('#train-start');
  await page.waitForFunction(() => /step 2 of 3/.test(document.querySelector('#train-progress')?.textContent ?? ''), null, { timeout: 300_000 });
  await page.reload();
  await ready(page);
  await page.waitForSelector('#resume-offer', { timeout: 60_000 });
  const offer = await text(page, '#resume-offer');
  console.log(`      after the reload: ${offer.replace(/\s+/g, ' ')}`);
  const held = Number(/holds step (\d) of 3/.exec(offer)[1]);
  assert.ok(held >= 1 && held < 3, offer);
  assert.match(await text(page, '#storage-info'), /1 model, 1 adapter, 1 run/);
  // The stored adapter joins the list once the model is loaded.
  await page.waitForFunction(() => document.querySelectorAll('#adapter-select option').length === 2, null, { timeout: 60_000 });
  assert.deepEqual(await page.locator('#adapter-select option').allInnerTexts(), ['base model', 'SFT #1']);
  assert.equal(await page.locator('#runs-table tbody tr').count(), 1);
  await page.click('#resume-run');
  await page.waitForFunction(() => document.querySelector('#train-summary')?.textContent.startsWith('SFT #2'), null, { timeout: 600_000 });
  const resumed = await series(page, '#train-chart-loss');
  console.log(`      uninterrupted ${full.map((v) => v.toFixed(5))}; resumed from step ${held}: ${resumed.map((v) => v.toFixed(5))}`);
  assert.equal(resumed.length, 3);
  // Steps after the checkpoint continue exactly where the uninterrupted run went (AdamW's
  // moments and the data order are restored); WebGPU's float order allows a tiny difference.
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(resumed[i] - full[i]) < 1e-4, `step ${i + 1}: ${resumed[i]} vs ${full[i]}`);
  assert.equal(await page.locator('#resume-offer').count(), 0);
  // The adapter stored before the reload ranks exactly as it did.
  await page.selectOption('#adapter-select', '0');
  await page.waitForFunction(() => document.querySelector('#model-in-use').textContent.includes('SFT #1'));
  const restored = await rankingScores(page);
  for (const t of Object.keys(withSft)) assert.ok(Math.abs(withSft[t] - restored[t]) < 1e-4, `${t}: ${withSft[t]} vs ${restored[t]}`);
  // Runs export as JSON.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#runs-export')]);
  const runs = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.equal(runs.length, 2);
  assert.deepEqual(runs.map((r) => r.steps.length), [3, 3]);
  // Cleared, then imported back from the export.
  await page.click('#storage-clear');
  await page.click('#storage-clear-confirm');
  await page.waitForFunction(() => /0 models, 0 adapters, 0 runs/.test(document.querySelector('#storage-info')?.textContent ?? ''), null, { timeout: 60_000 });
  assert.equal(await page.locator('#runs-table tbody tr').count(), 0);
  await page.setInputFiles('#runs-import', await download.path());
  await page.waitForFunction(() => document.querySelectorAll('#runs-table tbody tr').length === 2, null, { timeout: 60_000 });
  // The storage summary follows the run list in a separate message.
  await page.waitForFunction(() => /0 models, 0 adapters, 2 runs/.test(document.querySelector('#storage-info')?.textContent ?? ''), null, { timeout: 60_000 });
});

await test('a full storage quota is reported with advice; the session goes on and nothing stored is lost', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await page.waitForFunction(() => /1 model/.test(document.querySelector('#storage-info')?.textContent ?? ''), null, { timeout: 60_000 });
  // The browser's own quota error (DevTools protocol), not a simulated one.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 1 });
  await setField(page, '#train-prompts', 2);
  await setField(page, '#train-validate', 0);
  await setField(page, '#train-steps', 1);
  await setField(page, '#train-accumulation', 1);
  await trainAndWait(page, 'SFT #1');
  await page.waitForSelector('#storage-warning', { timeout: 60_000 });
  const warning = await text(page, '#storage-warning');
  console.log(`      ${warning.replace(/\s+/g, ' ').slice(0, 200)}`);
  assert.match(warning, /quota is full.*Nothing stored before was lost.*Clear stored data/s);
  // The session keeps the adapter and ranks with it.
  assert.deepEqual(await page.locator('#adapter-select option').allInnerTexts(), ['base model', 'SFT #1']);
  await rankingScores(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
  await page.reload();
  await ready(page);
  await page.waitForFunction(() => /1 model, 0 adapters, 0 runs/.test(document.querySelector('#storage-info')?.textContent ?? ''), null, { timeout: 60_000 });
  assert.match(await text(page, '#stored-models'), /tiny\.gguf/);
  // Clearing removes it (two clicks).
  await page.click('#storage-clear');
  await page.click('#storage-clear-confirm');
  await page.waitForFunction(() => /0 models, 0 adapters, 0 runs/.test(document.querySelector('#storage-info')?.textContent ?? ''), null, { timeout: 60_000 });
  assert.match(await text(page, '#model-info'), /tiny\.gguf/, 'the loaded model stays');
});

await test('a preference JSONL (picked or dropped) trains DPO on its own pairs; a malformed one is refused by line', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.selectOption('#train-stage', 'preference');
  await page.selectOption('#train-pairs', 'file');
  await page.setInputFiles('#pairs-file', { name: 'bad.jsonl', mimeType: 'application/jsonl',
    buffer: Buffer.from('{"prompt":"I watched Heat.","chosen":"Casino","rejected":"Babe"}\n{"prompt": 3}\n') });
  await page.waitForSelector('#error', { timeout: 30_000 });
  assert.match(await text(page, '#error'), /bad\.jsonl.*line 2/);
  await page.click('#error button');
  const pairs = [['Heat', 'Casino', 'Babe'], ['Toy Story', 'Aladdin', 'Fargo'], ['Star Wars', 'Star Trek', 'Clueless']]
    .map(([seen, chosen, rejected]) => JSON.stringify({ prompt: `I watched ${seen}. Which of Casino, Babe, Aladdin, Fargo, Star Trek, Clueless next?`, chosen, rejected }));
  // Dropped on the Align card.
  const drop = await page.evaluateHandle((text) => {
    const dt = new DataTransfer();
    dt.items.add(new File([text], 'pairs.jsonl', { type: 'application/jsonl' }));
    return dt;
  }, pairs.join('\n') + '\n');
  await page.dispatchEvent('#align-card', 'drop', { dataTransfer: drop });
  await page.waitForSelector('#pairs-info', { timeout: 30_000 });
  assert.match(await text(page, '#pairs-info'), /pairs\.jsonl: 3 pairs, 0 with RosePO's eps/);
  await setField(page, '#train-steps', 2);
  await setField(page, '#train-accumulation', 1);
  await setField(page, '#train-validate', 0);
  const dpo = await trainAndWait(page, 'DPO #1');
  console.log(`      ${dpo}`);
  assert.match(dpo, /finished 2 of 2 steps in [\d.]+ s on 3 pairs \(from the base model\)/);
  const loss = await series(page, '#train-chart-loss');
  assert.ok(Math.abs(loss[0] - Math.LN2) < 1e-4, `first DPO loss ${loss[0]}`);
  // RosePO needs each pair's eps, which these pairs lack.
  await page.selectOption('#train-loss', 'rosepo');
  await page.click('#train-start');
  await page.waitForSelector('#error', { timeout: 30_000 });
  assert.match(await text(page, '#error'), /RosePO needs each pair's smoothing factor/);
});

await test('the loss lab draws every loss and its gradient weight; sliders move optima and S-DPO weights', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await page.waitForSelector('#loss-lab .lab-panel', { timeout: 60_000 });
  const panels = page.locator('#loss-lab .lab-panel');
  assert.equal(await panels.count(), 11);
  for (const id of ['dpo', 'cdpo', 'rdpo', 'ipo', 'sdpo', 'simpo', 'alpha-dpo', 'beta-dpo', 'dr-dpo', 'orpo', 'rosepo']) {
    for (const line of ['series-loss', 'series-weight']) {
      const values = (await page.locator(`#lab-${id} polyline.${line}`).getAttribute('data-values')).split(',').map(Number);
      assert.equal(values.length, 121, `${id} ${line}`);
      assert.ok(values.every(Number.isFinite), `${id} ${line} has non-finite values`);
      const points = (await page.locator(`#lab-${id} polyline.${line}`).getAttribute('points')).trim().split(' ');
      assert.equal(points.length, 121, `${id} ${line} points drawn`);
    }
  }
  // Every panel has its margin axis.
  assert.deepEqual(await page.locator('#lab-dpo text').allTextContents().then((t) => t.filter((s) => /^-?\d$/.test(s))).then((t) => t.slice(-5)), ['-6', '-3', '0', '3', '6']);
  // The overlay: the chosen losses on one set of axes (DPO, cDPO and S-DPO to begin with).
  const overlay = () => page.locator('#lab-overlay-chart polyline').evaluateAll((ls) => ls.map((l) => l.id));
  assert.deepEqual(await overlay(), ['overlay-dpo', 'overlay-cdpo', 'overlay-sdpo']);
  await page.uncheck('#overlay-pick-cdpo');
  await page.check('#overlay-pick-rosepo');
  assert.deepEqual(await overlay(), ['overlay-dpo', 'overlay-sdpo', 'overlay-rosepo']);
  const overlaid = (await page.locator('#overlay-dpo').getAttribute('data-values')).split(',').map(Number);
  const alone = (await page.locator('#lab-dpo polyline.series-loss').getAttribute('data-values')).split(',').map(Number);
  assert.ok(overlaid.length === 121 && overlaid.every((v, i) => Math.abs(v - alone[i]) < 1e-5), 'the overlay draws the same curve');
  // All eleven on one set of axes, each in its own colour.
  for (const box of await page.locator('#lab-overlay input[type=checkbox]').all()) await box.check();
  const strokes = await page.locator('#lab-overlay-chart polyline').evaluateAll((ls) => ls.map((l) => l.getAttribute('stroke')));
  assert.equal(strokes.length, 11);
  assert.equal(new Set(strokes).size, 11, `overlay colours: ${strokes}`);
  for (const id of ['cdpo', 'ipo', 'simpo', 'alpha-dpo', 'beta-dpo', 'dr-dpo', 'orpo', 'rdpo']) await page.uncheck(`#overlay-pick-${id}`);
  const optimum = async (id) => Number(await page.locator(`#lab-${id}`).getAttribute('data-optimum'));
  // cDPO and RosePO: ln((1 - eps) / eps) / beta; IPO: 1 / (2 tau). Defaults beta 1, eps 0.1, tau 0.25.
  assert.ok(Math.abs((await optimum('cdpo')) - Math.log(9)) < 1e-5);
  assert.ok(Math.abs((await optimum('rosepo')) - Math.log(9)) < 1e-5);
  assert.ok(Math.abs((await optimum('ipo')) - 2) < 1e-6);
  assert.equal(await page.locator('#lab-dpo').getAttribute('data-optimum'), '');
  const slide = (id, v) => page.$eval(id, (el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, v);
  const dpoBefore = await page.locator('#lab-dpo polyline.series-loss').getAttribute('data-values');
  await slide('#lab-eps', 0.2);
  await page.waitForFunction(() => Math.abs(Number(document.querySelector('#lab-cdpo').dataset.optimum) - Math.log(4)) < 1e-5);
  assert.equal(await page.locator('#lab-dpo polyline.series-loss').getAttribute('data-values'), dpoBefore, 'eps does not move DPO');
  await slide('#lab-beta', 2);
  await page.waitForFunction(() => Math.abs(Number(document.querySelector('#lab-cdpo').dataset.optimum) - Math.log(4) / 2) < 1e-5);
  assert.notEqual(await page.locator('#lab-dpo polyline.series-loss').getAttribute('data-values'), dpoBefore, 'beta moves DPO');
  await slide('#lab-k', 5);
  await page.waitForFunction(() => document.querySelectorAll('#sdpo-weights .bar').length === 5);
  const weights = (await page.locator('#sdpo-weights .bar').evaluateAll((bars) => bars.map((b) => Number(b.dataset.weight))));
  assert.ok(Math.abs(weights.reduce((a, b) => a + b, 0) - 1) < 1e-9, `weights ${weights}`);
  assert.ok(weights.every((w, i) => i === 0 || w < weights[i - 1]), `the hardest negative gets most: ${weights}`);
  console.log(`      S-DPO weights at K 5, beta 2: ${weights.map((w) => w.toFixed(3))}`);
});

await test('an adapter exported in PEFT layout imports back with identical scores; a bad adapter file is refused', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await setField(page, '#train-prompts', 2);
  await setField(page, '#train-validate', 0);
  await setField(page, '#train-steps', 3);
  await setField(page, '#train-lr', 0.02);
  await trainAndWait(page, 'SFT #1');
  const trained = await rankingScores(page);
  const downloads = [];
  page.on('download', (d) => downloads.push(d));
  await page.click('#adapter-export');
  await page.waitForSelector('#adapter-notice', { timeout: 60_000 });
  for (let i = 0; i < 50 && downloads.length < 2; i++) await page.waitForTimeout(100);
  assert.deepEqual(downloads.map((d) => d.suggestedFilename()).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'recalign-adapter-'));
  const files = {};
  for (const d of downloads) {
    files[d.suggestedFilename()] = path.join(dir, d.suggestedFilename());
    await d.saveAs(files[d.suggestedFilename()]);
  }
  const config = JSON.parse(fs.readFileSync(files['adapter_config.json'], 'utf8'));
  assert.equal(config.peft_type, 'LORA');
  assert.deepEqual(config.target_modules, ['q_proj', 'v_proj']);
  const st = fs.readFileSync(files['adapter_model.safetensors']);
  const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8'));
  assert.deepEqual(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'].shape, [8, 32]);
  // A file that is not an adapter is refused, and the list stays as it was.
  await page.setInputFiles('#adapter-files', [{ name: 'notes.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from('not a tensor file') }]);
  await page.waitForSelector('#error', { timeout: 30_000 });
  assert.match(await text(page, '#error'), /importing notes\.safetensors: .*not a safetensors file/);
  await page.click('#error button');
  assert.deepEqual(await page.locator('#adapter-select option').allInnerTexts(), ['base model', 'SFT #1']);
  await page.selectOption('#adapter-select', 'base');
  await page.setInputFiles('#adapter-files', [files['adapter_model.safetensors'], files['adapter_config.json']]);
  await page.waitForFunction(() => document.querySelector('#model-in-use').textContent.includes('adapter_model (imported)'), null, { timeout: 60_000 });
  const imported = await rankingScores(page);
  for (const t of Object.keys(trained)) assert.equal(imported[t], trained[t], `${t}: ${trained[t]} vs ${imported[t]}`);
  console.log(`      exported ${st.length} bytes, ${Object.keys(header).length - 1} tensors; the import scores 20 candidates identically`);
});

// axe-core (the accessibility engine of Lighthouse and DevTools) on the page with a model, the
// dataset, a ranking, the catalogue list and the charts shown: no violation of WCAG 2 A/AA.
const axeSource = fs.readFileSync(new URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
await test('accessibility: axe-core finds no WCAG 2 A or AA violation on the page in use, in the light and the dark scheme', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await ready(page);
  await page.click('#test-user-button');
  await page.waitForSelector('#test-user', { timeout: 30_000 });
  await rankingScores(page);
  await page.check('#tail-toggle');
  await page.click('#recommend-catalogue');
  await page.waitForSelector('#catalogue-recommendations tr.recommended', { timeout: 300_000 });
  // Evaluated through DevTools, which the page's CSP (script-src 'self') does not govern.
  await page.evaluate(axeSource);
  const violations = () => page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => `${v.id} (${v.impact}, ${v.nodes.length}x): ${v.help}; e.g. ${v.nodes[0].target.join(' ')}`);
  });
  assert.deepEqual(await violations(), [], 'light scheme');
  // The system's dark scheme (prefers-color-scheme): the page follows it, with AA contrast too.
  await page.emulateMedia({ colorScheme: 'dark' });
  const background = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  assert.notEqual(background, 'rgb(247, 247, 245)', 'the page follows the dark scheme');
  assert.deepEqual(await violations(), [], 'dark scheme');
});

await test('on a 390x844 phone screen nothing sticks out sideways', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await page.click('#rank');
  await page.waitForSelector('#ranking tr.candidate', { timeout: 120_000 });
  await page.selectOption('#train-stage', 'preference');
  const overflow = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > width + 1 && !el.closest('table.steps, .scroll'))
      .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${el.className}` : ''}`);
    return { scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10) };
  });
  assert.deepEqual(overflow.wide, [], `overflowing: ${overflow.wide.join(', ')}`);
  assert.ok(overflow.scrollWidth <= overflow.width, `page ${overflow.scrollWidth} px wide`);
}, { width: 390, height: 844 });

await test('Evaluate puts the base model and an adapter side by side: accuracy, popularity bias, hallucination', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await setField(page, '#eval-users', 5);
  const evaluate = async (rows) => {
    await page.click('#eval-run');
    await page.waitForFunction((n) => document.querySelectorAll('#eval-table tbody tr').length === n, rows, { timeout: 300_000 });
  };
  await evaluate(1);
  await setField(page, '#train-prompts', 2);
  await setField(page, '#train-validate', 0);
  await setField(page, '#train-steps', 12);
  await page.evaluate(() => { window.__longest = 0; });
  await trainAndWait(page, 'SFT #1');
  const longest = await page.evaluate(() => window.__longest);
  console.log(`      longest main-thread task while 12 SFT steps trained on the CPU device: ${longest ? `${longest.toFixed(0)} ms` : 'none over 50 ms'}`);
  // The loss chart: ticks on both axes, the axes named, a legend, the nearest step's values
  // under the pointer, and the chart as an SVG file.
  const lossChart = page.locator('figure:has(#train-chart)');
  const ticks = await lossChart.locator('g.tick text').allTextContents();
  assert.ok(ticks.length >= 5 && ticks.includes('12'), `ticks: ${ticks}`);
  assert.deepEqual(await lossChart.locator('text.axis-label').allTextContents(), ['step', 'loss (nats per answer token)']);
  assert.match(await lossChart.locator('.key').first().innerText(), /loss/);
  const box = await page.locator('#train-chart').boundingBox();
  await page.mouse.move(box.x + box.width * 0.55, box.y + box.height * 0.4);
  await page.waitForFunction(() => /^step \d+: loss \d/.test(document.querySelector('figure:has(#train-chart) .readout')?.textContent ?? ''));
  const readout = await lossChart.locator('.readout').innerText();
  const step = Number(/^step (\d+)/.exec(readout)[1]);
  const losses = await series(page, '#train-chart-loss');
  assert.ok(step >= 1 && step <= 12, readout);
  assert.ok(Math.abs(Number(/loss ([\d.e+-]+)/.exec(readout)[1]) - losses[step - 1]) < 1e-3, `${readout} vs ${losses[step - 1]}`);
  const [svgFile] = await Promise.all([page.waitForEvent('download'), lossChart.locator('.chart-download').click()]);
  const svg = fs.readFileSync(await svgFile.path(), 'utf8');
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.includes('id="train-chart-loss"') && svg.includes('stroke="#'), 'the file keeps the line and its colour');
  await evaluate(2);
  const rows = await page.locator('#eval-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  for (const r of rows) console.log(`      ${r.join(' | ')}`);
  assert.deepEqual(rows.map((r) => r[0]), ['base model', 'SFT #1']);
  for (const r of rows) {
    assert.equal(r[1], 'validation');
    assert.equal(r[2], '5');
    for (const i of [3, 4, 5, 6]) assert.ok(Number(r[i]) >= 0 && Number(r[i]) <= 1, `metric ${i}: ${r[i]}`);
    assert.ok(Number(r[7]) > 0, `AvgPop@1 ${r[7]}`);
    assert.match(r[11], /^\d+(\.\d)?%$/, 'ValidRatio from generation');
  }
  // Popularity against rank: one line per evaluation, 20 ranks; its rank-1 point is AvgPop@1.
  for (const [i, r] of rows.entries()) {
    const pop = await series(page, `#eval-pop-${i}`);
    assert.ok(pop.length === 20 && pop.every((v) => Number.isFinite(v) && v >= 0), `eval-pop-${i}: ${pop}`);
    assert.ok(Math.abs(pop[0] - Number(r[7])) < 0.05 + 1e-9, `rank 1 ${pop[0]} vs AvgPop@1 ${r[7]}`);
  }
});

await test('Align in four steps: a test user, the base ranking, Quick SFT, RosePO, and the three side by side', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf`);
  await ready(page);
  await page.waitForSelector('#dataset-info strong', { timeout: 120_000 });
  await page.click('#walk-start');
  await page.waitForFunction(() => document.querySelectorAll('#walk-results tr.walk-model').length === 3
    || document.querySelector('#walk-stopped'), null, { timeout: 900_000 });
  assert.equal(await page.locator('#walk-stopped').count(), 0, await page.locator('#walk-stopped').allInnerTexts().then(String));
  const rows = await page.locator('#walk-results tr.walk-model').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  for (const r of rows) console.log(`      ${r.join(' | ')}`);
  assert.deepEqual(rows.map((r) => r[0]), ['base model', 'SFT #1', 'RosePO #1']);
  for (const r of rows) {
    assert.match(r[1], /^\d+ of 20$/, `their next title's rank: ${r[1]}`);
    assert.ok(Number(r[4]) >= 0 && Number(r[4]) <= 1, `validation HR@1 ${r[4]}`);
    assert.ok(Number(r[5]) > 0, `validation AvgPop@1 ${r[5]}`);
  }
  // What the table says is what the page holds: RosePO #1 ranks now, the test user's choice is
  // marked in its ranking at the rank the table gives.
  assert.match(await text(page, '#model-in-use'), /RosePO #1/);
  const chosenRank = await page.locator('#ranking tr.chosen td').first().innerText();
  assert.equal(`${Number(chosenRank)} of 20`, rows[2][1]);
  assert.deepEqual(await page.locator('#adapter-select option').allInnerTexts(), ['base model', 'SFT #1', 'RosePO #1']);
});

await test('settings live in the URL hash: a reload keeps them and a link reproduces a setup', false, async (page) => {
  await page.goto(`${origin}/?model=models/tiny.gguf#a.stage=preference&a.loss=rosepo&a.steps=5&lab.eps=0.2&lab.k=4`);
  await page.waitForSelector('#loss-lab .lab-panel', { timeout: 60_000 });
  assert.equal(await page.locator('#train-stage').inputValue(), 'preference');
  assert.equal(await page.locator('#train-loss').inputValue(), 'rosepo');
  assert.equal(await page.locator('#train-steps').inputValue(), '5');
  assert.ok(Math.abs(Number(await page.locator('#lab-cdpo').getAttribute('data-optimum')) - Math.log(4)) < 1e-5);
  assert.equal(await page.locator('#sdpo-weights .bar').count(), 4);
  await setField(page, '#train-lr', 0.003);
  await page.check('#train-strategy-popular');
  await page.waitForFunction(() => location.hash.includes('a.lr=0.003'));
  await page.reload();
  await page.waitForSelector('#loss-lab .lab-panel', { timeout: 60_000 });
  assert.equal(await page.locator('#train-lr').inputValue(), '0.003');
  assert.ok(await page.locator('#train-strategy-popular').isChecked());
  assert.equal(await page.locator('#train-loss').inputValue(), 'rosepo');
  // A malformed link falls back to the defaults instead of breaking the page.
  await page.goto('about:blank');
  await page.goto(`${origin}/?model=models/tiny.gguf#a.steps=many&lab.eps=banana&a.loss=nope`);
  await page.waitForSelector('#loss-lab .lab-panel', { timeout: 60_000 });
  assert.equal(await page.locator('#train-steps').inputValue(), '8');
  assert.ok(Math.abs(Number(await page.locator('#lab-cdpo').getAttribute('data-optimum')) - Math.log(9)) < 1e-5);
});

stop();
const foreign = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
console.log(`${requests.length} requests recorded, ${foreign.length} to other origins`);
if (foreign.length) results.push(`FAIL  requests to other origins: ${foreign.join(', ')}`);
if (problems.length) results.push(`FAIL  panics or errors in the page: ${problems.join(' | ')}`);
const failed = results.filter((r) => r.startsWith('FAIL'));
if (failed.length) {
  console.error(failed.join('\n'));
  process.exit(1);
}
console.log('page tests passed');
