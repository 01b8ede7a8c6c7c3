const fmt = (v, digits = 0) =>
  v === null || v === undefined ? '—' : v >= 1e4 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits);

/** Markdown table, so the README can show it as printed. */
export function formatTable(results) {
  const rows = [
    '| impl | H | batch | key-steps/s | p50 µs/call | p99 µs/call | CPU µs/call (median) | max abs diff vs reference |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const diff = r.maxAbsDiff === null ? '—' : r.maxAbsDiff.toExponential(1);
    rows.push(
      `| ${r.impl} | ${r.H} | ${r.batch} | ${fmt(r.stepsPerSec)} | ${fmt(r.p50us, 1)} | ${fmt(r.p99us, 1)} | ${fmt(r.cpuUsPerCall, 1)} | ${diff} |`,
    );
  }
  return rows.join('\n');
}

/** The kernel grid as a markdown table: median rates, GFLOP/s, % of the FMA peak, ratio to ORT. */
export function formatGrid(grid) {
  const rows = [
    '| impl | cell | layers | H | batch | key-steps/s (median) | p50 µs/call | GFLOP/s | % FMA peak | × onnxruntime-node | CPU µs/call (median) | % peak by CPU | × ORT by CPU |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const g of grid) {
    rows.push(
      `| ${g.impl} | ${g.kind} | ${g.layers} | ${g.H} | ${g.batch} | ${fmt(g.medianStepsPerSec)} | ${fmt(g.p50us, 1)} | ${fmt(g.gflops, 1)} | ${fmt(g.pctPeak, 0)} | ${g.vsOrt === null ? '—' : g.vsOrt.toFixed(2)} | ${fmt(g.cpuUsPerCall, 1)} | ${fmt(g.pctPeakCpu, 0)} | ${g.vsOrtCpu === null ? '—' : g.vsOrtCpu.toFixed(2)} |`,
    );
  }
  return rows.join('\n');
}
