// The page's CPU ranking speed, for comparison with `recalign bench rank` (same 10 history titles
// and 20 candidates): opens the page on the base model, ranks `repeats` times after one warm-up,
// and prints the device line (which build, how many threads) and each ranking's time as JSON.
// Usage: node web/e2e/rank-bench.mjs <recalign binary> <dist dir> [query] [repeats]
// (query default "device=cpu&adapter=none"; add "&threads=1" for the single-thread build).
import { chromium } from 'playwright-core';
import { startServer, chromiumArgs } from './serve.mjs';

const [recalign, dist, query = 'device=cpu&adapter=none', repeats = '3'] = process.argv.slice(2);
// crates/recalign-cli/src/bench.rs's HISTORY and CANDIDATES.
const history = ['Toy Story', 'GoldenEye', 'Four Rooms', 'Get Shorty', 'Copycat', 'Twelve Monkeys',
  'Babe', 'Dead Man Walking', 'Richard III', 'Seven (Se7en)'];
const candidates = ['Usual Suspects, The', 'Mighty Aphrodite', 'Postino, Il', "Mr. Holland's Opus",
  'French Twist (Gazon maudit)', 'From Dusk Till Dawn', 'White Balloon, The', "Antonia's Line",
  'Angels and Insects', 'Muppet Treasure Island', 'Braveheart', 'Taxi Driver', 'Rumble in the Bronx',
  'Birdcage, The', 'Brothers McMullen, The', 'Bad Boys', 'Apollo 13', 'Batman Forever',
  'Belle de jour', 'Crimson Tide'];

const { origin, stop } = await startServer(recalign, dist, 24000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: chromiumArgs,
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`[page] ${m.text()}`); });
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('#model-info strong', { timeout: 600_000 });
  await page.fill('#history', history.join('\n'));
  await page.fill('#candidates', candidates.join('\n'));
  const times = [];
  let meta = '';
  for (let i = 0; i <= Number(repeats); i++) {
    await page.waitForSelector('#rank:not([disabled])', { timeout: 600_000 });
    await page.click('#rank');
    // Busy (Rank disabled), then done: the ranking's meta line carries its time.
    await page.waitForSelector('#rank[disabled]', { timeout: 5_000 }).catch(() => {});
    await page.waitForSelector('#rank:not([disabled])', { timeout: 600_000 });
    await page.waitForSelector('#ranking .meta >> nth=0', { timeout: 600_000 });
    meta = await page.locator('#ranking .meta').first().innerText();
    if (i > 0) times.push(Number(/in ([\d.]+) s/.exec(meta)[1]) * 1000);
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    query,
    device: await page.locator('#device').innerText(),
    cross_origin_isolated: await page.evaluate(() => self.crossOriginIsolated),
    ranking_meta: meta,
    runs_ms: times,
    median_ms: times[Math.floor(times.length / 2)],
  }, null, 2));
} finally {
  await browser.close();
  stop();
}
