const fmt = (v, digits = 0) =>
  v === null || v === undefined ? '—' : v >= 1e4 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits);

/** Markdown table, so the README can show it as printed. */
export function formatTable(results) {
  const rows = [
    '| impl | H | batch | key-steps/s | p50 µs/call | p99 µs/call | max abs diff vs reference |',
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const diff = r.maxAbsDiff === null ? '—' : r.maxAbsDiff.toExponential(1);
    rows.push(
      `| ${r.impl} | ${r.H} | ${r.batch} | ${fmt(r.stepsPerSec)} | ${fmt(r.p50us, 1)} | ${fmt(r.p99us, 1)} | ${diff} |`,
    );
  }
  return rows.join('\n');
}
