import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/serve.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';
import { modelFile, startTestServer } from '../helpers/serve.js';

/** The page's `document`, for the functions Playwright runs in the browser (tsc here has no DOM lib). */
interface PageElement {
  readonly textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement> & { readonly length: number };
};

/** Debian's package; CI installs it (`apt-get install -y chromium`). */
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

let server: RunningServer;
let demo: RunningServer;
let browser: BrowserContext | undefined;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

beforeAll(async () => {
  const dir = await tempDir('dashboard');
  const events = join(dir, 'events.ndjson');
  const lines = Array.from({ length: 60 }, (_, i) =>
    JSON.stringify({ key: `cust-${i % 6}`, ts: i, features: [Math.sin(i), Math.cos(i), (i % 5) / 5] }),
  );
  await writeFile(events, `${lines.join('\n')}\n`);
  server = await startTestServer({
    model: { path: await modelFile() },
    sources: { demo: { enabled: true, file: events, eventsPerSecond: 60 } },
  });
  // What `npm start` shows: the demo model (its spec decodes next_interval_days) over the demo feed.
  demo = await startTestServer({
    model: { path: join(ROOT, 'demo', 'visits.cellstream.json') },
    sources: { demo: { enabled: true, file: join(ROOT, 'demo', 'visits.ndjson'), eventsPerSecond: 40 } },
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await demo?.close();
});

async function launch(): Promise<BrowserContext> {
  // Inside the tests, not in a hook: without Chromium they fail, they are never skipped.
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `the dashboard test needs Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\` ` +
        '(the Debian package; or point CHROMIUM_PATH at a Chromium binary)',
    );
  }
  browser ??= await chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), 'cellstream-chromium-')), {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return browser;
}

describe('dashboard in headless Chromium', () => {
  it('shows live predictions: counters rise, keys are listed, charts get points', async () => {
    const page = await (await launch()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    await page.goto(`${server.url}/`);

    await page.waitForFunction(
      () => document.querySelector('#status')?.getAttribute('data-state') === 'live',
    );
    await page.waitForFunction(() => document.querySelectorAll('#key-list li').length >= 3);
    const keys = await page.$$eval('#key-list li', (items) => items.map((li) => li.getAttribute('data-key')));
    expect(keys.every((k) => /^cust-\d$/.test(k ?? ''))).toBe(true);

    const seen = async () => Number(await page.textContent('#predictions-seen'));
    const first = await seen();
    await page.waitForFunction(
      (n) => Number(document.querySelector('#predictions-seen')?.textContent) > n,
      first,
    );
    expect(await seen()).toBeGreaterThan(first);

    // Per-key charts of the most active keys have plotted points, and uPlot drew into a canvas.
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#key-charts .chart')].some(
        (c) => Number(c.getAttribute('data-points')) >= 3,
      ),
    );
    expect(await page.locator('#key-charts .key-chart canvas').count()).toBeGreaterThan(0);
    // A model without a feature spec decodes nothing: its raw output is charted, and labelled so.
    expect(await page.getAttribute('#key-charts .chart', 'data-unit')).toBe('raw output (no feature spec)');
    // The throughput chart is fed from /v1/stats and the model label shown.
    await page.waitForFunction(
      () => Number(document.querySelector('#throughput-chart')?.getAttribute('data-points')) >= 2,
    );
    await page.waitForFunction(() => Number(document.querySelector('#events-rate')?.textContent) > 0);
    expect(await page.textContent('#model')).toBe('tiny@1');
    // Without Kafka there is no Kafka panel.
    expect(await page.isHidden('#kafka-panel')).toBe(true);

    // Picking a key charts that key alone.
    await page.click('#key-list li[data-key="cust-4"]');
    await page.waitForFunction(() => {
      const charts = [...document.querySelectorAll('#key-charts .key-chart')];
      return charts.length === 1 && charts[0].getAttribute('data-key') === 'cust-4';
    });

    const shot = process.env['CELLSTREAM_DASHBOARD_SCREENSHOT'];
    if (shot) await page.screenshot({ path: shot, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("charts the demo model's decoded next_interval_days by step, and says what the latency figures hold", async () => {
    const page = await (await launch()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${demo.url}/`);
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#key-charts .chart')].some(
        (c) => Number(c.getAttribute('data-points')) >= 3,
      ),
    );
    // Pin one key, so its chart stays while others become more active.
    const key = (await page.getAttribute('#key-list li', 'data-key'))!;
    await page.click(`#key-list li[data-key="${key}"]`);
    const chart = page.locator(`#key-charts .key-chart[data-key="${key}"]`);
    await chart.waitFor();
    const plot = chart.locator('.chart');
    expect(await plot.getAttribute('data-unit')).toBe('next_interval_days');
    // The axes are titled: the decoded field up the side, the key's steps along the bottom.
    expect(await chart.locator('.axes').textContent()).toBe(
      "next_interval_days by step (seq) of the key's sequence",
    );

    // The plotted value is the decoded prediction the server holds for that key at that step,
    // not the raw output (a min-max scaled fraction).
    let matched = false;
    for (let i = 0; i < 100 && !matched; i++) {
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 50)));
      const [seq, value] = await Promise.all([
        plot.getAttribute('data-last-seq'),
        plot.getAttribute('data-last-value'),
      ]);
      const held = (await (await fetch(`${demo.url}/v1/keys/${key}`)).json()) as {
        prediction: { seq: number; output: number[]; next_interval_days: number };
      };
      if (String(held.prediction.seq) !== seq) continue;
      expect(Number(value)).toBe(held.prediction.next_interval_days);
      expect(Number(value)).not.toBe(held.prediction.output[0]);
      matched = true;
    }
    expect(matched).toBe(true);
    // The feed places its laps behind the clock, so serve's default events.maxTsAhead refuses none.
    const stats = (await (await fetch(`${demo.url}/v1/stats`)).json()) as {
      totals: { predictions: number; rejected: number };
    };
    expect(stats.totals.predictions).toBeGreaterThan(0);
    expect(stats.totals.rejected).toBe(0);
    // The latency card says what it holds; the engine's batch time is shown apart.
    expect(await page.textContent('.counters')).toContain('batch wait + steps + durable state write (fsync)');
    await page.waitForFunction(() => /ms · /.test(document.querySelector('#batch')?.textContent ?? ''));

    const shot = process.env['CELLSTREAM_DASHBOARD_SCREENSHOT'];
    if (shot) await page.screenshot({ path: shot.replace(/\.png$/, '-demo.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows the models, their roles and step times, and the divergence of a shadow', async () => {
    const dir = await tempDir('dashboard-rollout');
    const events = join(dir, 'events.ndjson');
    const lines = Array.from({ length: 40 }, (_, i) =>
      JSON.stringify({ key: `cust-${i % 4}`, ts: i, features: [Math.sin(i), Math.cos(i), (i % 3) / 3] }),
    );
    await writeFile(events, `${lines.join('\n')}\n`);
    const rollout = await startTestServer({
      model: {
        path: await modelFile(tinyLstm(7)),
        shadow: await modelFile({ ...tinyLstm(8), version: '2' }),
      },
      sources: { demo: { enabled: true, file: events, eventsPerSecond: 60 } },
    });
    try {
      const page = await (await launch()).newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(err.message));
      await page.goto(`${rollout.url}/`);
      await page.waitForFunction(() => document.querySelectorAll('#models-roles tr').length === 2);
      await page.waitForFunction(
        () => Number(document.querySelector('#models-divergence tr td:nth-child(3)')?.textContent) > 0,
      );
      const roles = await page.locator('#models-roles tr').allTextContents();
      expect(roles[0]).toMatch(/^tiny@1primary\d/);
      expect(roles[1]).toMatch(/^tiny@2shadow\d/);
      const pair = await page.locator('#models-divergence tr td').allTextContents();
      expect(pair.slice(0, 2)).toEqual(['tiny@1', 'tiny@2']);
      expect(Number(pair[4])).toBeGreaterThan(0);
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await rollout.close();
    }
  });
});
