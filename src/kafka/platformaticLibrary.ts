/**
 * Which @platformatic/kafka the `platformatic` client runs on. Two are installed side by side:
 * 1.35.x as `@platformatic/kafka`, for Node 20, and 2.x under the npm alias
 * `@platformatic/kafka-2`, which declares `engines: node >= 22.22.0` and is faster there (issue 12:
 * passthrough 91k against 69.6k events/s). Only the one picked is loaded.
 */
import type * as V1 from '@platformatic/kafka';
import type * as V2 from '@platformatic/kafka-2';
import type { GuardableClient } from './platformaticBrokerGuard.js';

/** What cellstream uses of the library, typed as 1.35 has it: the subset both majors share. */
export type PlatformaticLibrary = Pick<
  typeof V1,
  | 'Admin'
  | 'Consumer'
  | 'Producer'
  | 'compatibilityPartitioner'
  | 'FetchIsolationLevels'
  | 'ListOffsetTimestamps'
  | 'ProduceAcks'
  | 'clientSoftwareVersion'
>;

export interface LoadedPlatformaticLibrary {
  /** The library's major version. */
  readonly major: 1 | 2;
  readonly library: PlatformaticLibrary;
  /**
   * Wraps each client the adapter makes: on 1.35 the guard against its unchecked look-up of a
   * broker missing from the cached metadata (platformaticBrokerGuard.ts); on 2.x the client as it
   * is, since 2.x's connection pool checks that itself. The guard's error is 1.35's own class:
   * 2.x would not know it for one of its errors (each major brands its errors with a symbol of its
   * own), and importing it would load 1.35 beside 2.x.
   */
  readonly guard: <T extends GuardableClient>(client: T) => T;
}

/** The oldest Node 2.x declares it supports (`>= 22.22.0 || >= 24.6.0`: the first covers the second). */
const V2_MIN_NODE: readonly [number, number, number] = [22, 22, 0];

/** Whether `version` (`process.versions.node`, `x.y.z`) runs @platformatic/kafka 2.x. */
export function nodeRunsPlatformatic2(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = version.split('.').map((n) => Number.parseInt(n, 10));
  const [a, b, c] = V2_MIN_NODE;
  return major !== a ? major > a : minor !== b ? minor > b : patch >= c;
}

/** Loads 2.x on a Node that 2.x supports, else 1.35. */
export async function loadPlatformaticLibrary(
  nodeVersion: string = process.versions.node,
): Promise<LoadedPlatformaticLibrary> {
  if (nodeRunsPlatformatic2(nodeVersion)) {
    return {
      major: 2,
      library: asCommonSubset(await import('@platformatic/kafka-2')),
      guard: (client) => client,
    };
  }
  const [library, { guardMissingBrokers }] = await Promise.all([
    import('@platformatic/kafka'),
    import('./platformaticBrokerGuard.js'),
  ]);
  return { major: 1, library, guard: guardMissingBrokers };
}

/**
 * 2.x as the 1.35 subset. TypeScript cannot check this assignment (each major's classes carry
 * `#private` members, which make them distinct types however alike): platformaticClient.ts compiled
 * against 2.12's types instead differs only where 2.x widens a fetched partition's
 * `abortedTransactions` and `records` to allow null, which `decodeBatches` accepts. Check that again
 * when moving 2.x on.
 */
function asCommonSubset(v2: typeof V2): PlatformaticLibrary {
  return v2 as unknown as PlatformaticLibrary;
}
