// The dashboard of `serve` in Kafka mode, in headless Chromium: its Kafka panel shows the
// consumer's health (ready, partitions, lag, broker, restores) from /v1/stats.
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/serve.js';
import { tempDir } from '../helpers/fixtures.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  MODEL_FILE,
  makeEvents,
  produce,
  requireBroker,
  waitForCatchUp,
} from '../helpers/kafka.js';
import { startTestServer } from '../helpers/serve.js';

interface PageElement {
  readonly textContent: string | null;
}
declare const document: { querySelector(selector: string): PageElement | null };

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

let server: RunningServer | undefined;
let browser: BrowserContext | undefined;
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('dashboard of serve in Kafka mode', () => {
  it('shows the Kafka panel: ready, the partitions owned, lag 0, broker connected', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`the dashboard test needs Chromium at ${CHROMIUM}`);
    await requireBroker();
    const t = await createInputTopic('serve-dash', 2);
    server = await startTestServer({
      model: { path: MODEL_FILE },
      state: { store: 'lmdb', path: join(await tempDir('serve-kafka-dash'), 'state') },
      kafka: { brokers, ...t, maxBatch: 100, maxWaitTimeInMs: 100 },
    });
    await produce(t.inputTopic, eventMessages(makeEvents(300, 30, 43)));
    await waitForCatchUp(t);
    browser = await chromium.launchPersistentContext(await mkdtemp(join(tmpdir(), 'cellstream-chromium-')), {
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${server.url}/`);
    await page.waitForSelector('#kafka-panel', { state: 'visible' });
    await page.waitForFunction(() => document.querySelector('#kafka-state')?.textContent === 'ready');
    expect(await page.textContent('#kafka-partitions')).toBe('0 1');
    expect(await page.textContent('#kafka-lag')).toBe('0');
    expect(await page.textContent('#kafka-broker')).toBe('connected');
    expect(await page.textContent('#kafka-crashes')).toBe('0 / 0');
    expect(await page.textContent('#kafka-restores')).toMatch(/^[1-9]\d* \(\d/);
    expect(await page.textContent('#kafka-reason')).toBe('');
    const shot = process.env['CELLSTREAM_DASHBOARD_SCREENSHOT'];
    if (shot) await page.screenshot({ path: shot.replace(/\.png$/, '-kafka.png'), fullPage: true });
    expect(errors).toEqual([]);
  }, 120_000);
});
