import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, selectKernel } from '../../src/model/kernels/index.js';

// The benchmark runs on the built JS; `npm test` builds first, a bare `vitest run` may not have.
beforeAll(() => {
  if (!existsSync('dist/model/kernels/index.js')) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json']);
}, 120_000);

const dir = mkdtempSync(join(tmpdir(), 'cellstream-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run bench -- --quick', () => {
  it('writes the report with every row and ratio, and every implementation agreed with the reference', () => {
    const file = join(dir, 'bench.json');
    execFileSync('node', ['bench/run.mjs', '--quick', '--json', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const report = JSON.parse(readFileSync(file, 'utf8'));
    expect(report.machine).toMatch(/cores, node v\d+/);
    expect(report.agreed).toBe(true);
    const impls = new Set(report.results.map((r: { impl: string }) => r.impl));
    for (const impl of [
      'cellstream-js',
      'cellstream-wasm',
      'onnxruntime-node',
      'tfjs-wasm',
      'tfjs-cpu',
      'cellstream-engine',
      'cellstream-engine-ttl',
    ]) {
      expect(impls, impl).toContain(impl);
    }
    for (const r of report.results) {
      expect(Object.keys(r)).toEqual(
        expect.arrayContaining(['impl', 'H', 'batch', 'stepsPerSec', 'p50us', 'p99us']),
      );
      expect(r.stepsPerSec).toBeGreaterThan(0);
      expect(r.agree, `${r.impl} H=${r.H} B=${r.batch}`).toBe(true);
    }
    expect(
      report.results
        .filter((r: { impl: string }) => r.impl === 'cellstream-wasm')
        .map((r: { batch: number }) => r.batch),
    ).toEqual([1, 16, 256]);
    // The ratios use the kernel selectKernel() picks by default, and say which.
    const nativeLoads = !(loadNative() instanceof Error);
    expect(report.defaultKernel).toBe(selectKernel().name);
    expect(report.batchedImpl).toBe(nativeLoads ? 'cellstream-native' : 'cellstream-wasm');
    expect(report.perEventImpl).toBe(report.batchedImpl);
    if (nativeLoads) {
      expect(
        report.results
          .filter((r: { impl: string }) => r.impl === 'cellstream-native')
          .map((r: { batch: number }) => r.batch),
      ).toEqual([1, 16, 256]);
    }
    expect(
      report.results
        .filter((r: { impl: string }) => r.impl === 'cellstream-engine')
        .map((r: { batch: number }) => r.batch),
    ).toEqual([1, 256]);
    // The kernel grid: LSTM and GRU at H=64 and 256, B=1 and 256, against ORT, each row with its
    // GFLOP/s, its share of the FMA peak the addon measured, and its ratio to ORT.
    type GridRow = { impl: string; kind: string; H: number; batch: number; gflops: number; agree: boolean };
    const grid: GridRow[] = report.grid;
    const shapes = (impl: string) =>
      grid
        .filter((g) => g.impl === impl)
        .map((g) => `${g.kind} ${g.H} ${g.batch}`)
        .sort();
    const expected = ['gru', 'lstm'].flatMap((k) =>
      [64, 256].flatMap((H) => [1, 256].map((B) => `${k} ${H} ${B}`)),
    );
    expect(shapes('onnxruntime-node')).toEqual(expected.sort());
    for (const g of grid) {
      expect(g.agree, `${g.impl} ${g.kind} H=${g.H} B=${g.batch}`).toBe(true);
      expect(g.gflops).toBeGreaterThan(0);
    }
    if (nativeLoads) {
      expect(shapes('cellstream-native')).toEqual(expected.sort());
      expect(report.fmaPeakGflops).toBeGreaterThan(0);
      expect(report.targets).toHaveLength(expected.length);
      for (const t of report.targets) {
        expect(t.vsOrt).toBeGreaterThan(0);
        expect(t.pctPeak).toBeGreaterThan(0);
        expect(typeof t.met).toBe('boolean');
      }
    }
    expect(Object.keys(report.ratios).sort()).toEqual(
      [
        'batchedVsOrt',
        'endToEndVsPassthrough',
        'engineOverhead',
        'engineOverheadB256',
        'perEventVsOrt',
        'perEventVsTfjsWasm',
      ].sort(),
    );
    for (const k of [
      'perEventVsOrt',
      'perEventVsTfjsWasm',
      'batchedVsOrt',
      'engineOverhead',
      'engineOverheadB256',
    ]) {
      expect(report.ratios[k], k).toBeGreaterThan(0);
    }
  }, 120_000);
});
