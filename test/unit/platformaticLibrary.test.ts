// The `platformatic` client runs on @platformatic/kafka 2.x where Node supports it (>= 22.22.0, as
// 2.x's engines field says) and on 1.35 below: both are installed, the alias `@platformatic/kafka-2`
// being 2.x. Nothing here connects.
import { describe, expect, it } from 'vitest';
import { loadPlatformaticLibrary, nodeRunsPlatformatic2 } from '../../src/kafka/platformaticLibrary.js';

describe('which @platformatic/kafka by Node version', () => {
  it.for([
    ['20.19.0', false],
    ['20.20.2', false],
    ['22.21.9', false],
    ['22.22.0', true],
    ['22.23.1', true],
    ['23.0.0', true],
    ['24.0.0', true],
    ['24.11.1', true],
    ['25.2.0', true],
  ] as const)('Node %s runs 2.x: %s', ([version, two]) => {
    expect(nodeRunsPlatformatic2(version)).toBe(two);
  });

  it.for(['20.20.2', '24.11.1'])('on Node %s the library loaded is the major picked', async (node) => {
    const loaded = await loadPlatformaticLibrary(node);
    expect(loaded.major).toBe(nodeRunsPlatformatic2(node) ? 2 : 1);
    expect(loaded.library.clientSoftwareVersion.split('.')[0]).toBe(String(loaded.major));
    expect(typeof loaded.library.Consumer).toBe('function');
  });

  it('this Node loads the major it supports', async () => {
    const loaded = await loadPlatformaticLibrary();
    expect(loaded.major).toBe(nodeRunsPlatformatic2(process.versions.node) ? 2 : 1);
  });
});
