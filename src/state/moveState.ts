import { existsSync } from 'node:fs';
import { open as openFile, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { StateError, UsageError } from '../errors.js';
import { RESERVED_KEY_PREFIX } from './changelogStore.js';
import { LmdbModelStates, modelStatesPath } from './modelStates.js';
import { decodeStateRecord } from './recordCodec.js';
import { readStoreMeta, STORE_META_FILE, writeStoreMeta } from './storeMeta.js';

/** Which way `moveState` copies: a single-model directory into a namespace, or back. */
export type MoveDirection = 'adopt' | 'retire';

export interface MoveStateOptions {
  readonly direction: MoveDirection;
  /**
   * adopt: the single-model state directory whose records move; retire: the `state.path` of serve
   * with several models, whose `<state>/models` holds the namespace.
   */
  readonly state: string;
  /** The other side; default `state`. adopt: the `state.path` of the rollout; retire: the single-model directory. */
  readonly to?: string | undefined;
  /** The model's namespace (`models[].name`, or `name@version`). */
  readonly namespace: string;
  /** Fingerprint of the model every record must carry. */
  readonly fingerprint: string;
  /** The model's label, as `serve` with one model records it in `cellstream-state.json`. */
  readonly label: string;
}

export interface MoveStateSummary {
  /** Keys now at the destination. */
  readonly keys: number;
  /**
   * `copied`: copied now; `resumed`: a run cut short had copied them, this one removed them from
   * the source; `done`: nothing was left at the source (an earlier run finished).
   */
  readonly outcome: 'copied' | 'resumed' | 'done';
  readonly from: string;
  readonly to: string;
}

type Binary = Database<Buffer, string>;

/** The LMDB environment options every state directory is opened with (as `LmdbStore` and `LmdbModelStates`). */
const ENV = {
  noSubdir: false,
  encoding: 'binary',
  separateFlushed: true,
  noSync: false,
  noMetaSync: false,
} as const;

/**
 * Moves one model's per-key records between the single-model layout (`<dir>` itself, as `serve`
 * with one model, `replay --state` and `warm` keep them) and a namespace of the rollout layout
 * (`<state.path>/models`, database `model:<name>`), for a stopped service. Each record's bytes are
 * copied unchanged, so every key continues exactly (its state, `seq`, `ts`, last applied event and
 * ids). Crash safety: the copy is one LMDB transaction, durable before the source is emptied (a
 * second transaction, in the source's environment); a run cut short between the two is completed
 * by running it again, which finds the destination holding exactly the source's records.
 *
 * Refused: a record of another model (`STATE_MODEL_MISMATCH`), a destination already holding other
 * records (`STATE_NOT_EMPTY`), either environment open in another process (`STATE_IN_USE`, as far
 * as LMDB's reader table shows it), a directory of the Kafka mode (its bookkeeping keys).
 */
export async function moveState(options: MoveStateOptions): Promise<MoveStateSummary> {
  const adopt = options.direction === 'adopt';
  const to = options.to ?? options.state;
  const singleDir = adopt ? options.state : to;
  const rolloutDir = adopt ? to : options.state;
  const sourceDir = adopt ? singleDir : modelStatesPath(rolloutDir);
  if (!existsSync(join(sourceDir, 'data.mdb'))) {
    throw new UsageError(
      adopt
        ? `${singleDir} holds no single-model state (no data.mdb): give --state the state directory serve with one model used`
        : `${rolloutDir} holds no model namespaces (no models/data.mdb): give --state the state.path serve with several models used`,
    );
  }
  if (resolve(singleDir) === resolve(modelStatesPath(rolloutDir))) {
    throw new UsageError(
      `${singleDir} is the models directory of ${rolloutDir} itself: give the directory above it`,
    );
  }
  const single = open<Buffer, string>({ path: singleDir, ...ENV });
  const states = new LmdbModelStates(modelStatesPath(rolloutDir));
  try {
    refuseInUse(single, singleDir);
    refuseInUse(states.live(), modelStatesPath(rolloutDir));
    const namespace: Binary = states.store(options.namespace).db;
    const [source, target] = adopt ? [single, namespace] : [namespace, single];
    const from = adopt ? singleDir : `${modelStatesPath(rolloutDir)} namespace ${options.namespace}`;
    const dest = adopt ? `${modelStatesPath(rolloutDir)} namespace ${options.namespace}` : singleDir;
    if (adopt) await refuseOtherModelMeta(singleDir, options);
    const sourceKeys = checkRecords(source, from, options);
    const targetKeys = count(target);
    let outcome: MoveStateSummary['outcome'];
    if (sourceKeys === 0) {
      if (targetKeys === 0) throw new UsageError(`${from} holds no records: there is nothing to move`);
      checkRecords(target, dest, options);
      outcome = 'done';
    } else if (targetKeys > 0) {
      if (!sameRecords(source, target, sourceKeys, targetKeys)) {
        throw new StateError(
          'STATE_NOT_EMPTY',
          `${dest} already holds the state of ${targetKeys} keys, not a copy of ${from}: ` +
            (adopt
              ? 'choose another --namespace, or another --to directory'
              : 'give --to an empty directory, or move the records there away first'),
        );
      }
      outcome = 'resumed';
    } else {
      // One transaction: a kill before it commits leaves the destination as it was, empty.
      await flushed(
        (adopt ? states.live() : single).batch(() => {
          for (const { key, value } of source.getRange({ snapshot: true })) target.put(key, value);
        }),
      );
      outcome = 'copied';
    }
    if (!adopt)
      await writeStoreMeta(singleDir, { model: { fingerprint: options.fingerprint, label: options.label } });
    // The copy is durable: only now does the source go, in one transaction of its own environment.
    if (sourceKeys > 0) await flushed(clear(adopt ? single : states.live(), source));
    if (adopt) await removeStoreMeta(singleDir);
    return { keys: count(target), outcome, from, to: dest };
  } finally {
    await states.close();
    await single.close();
  }
}

/** Removes every record of `db` (of environment `env`) in one transaction. */
function clear(env: RootDatabase<Buffer, string>, db: Binary): Promise<boolean> {
  return env.batch(() => {
    for (const key of db.getKeys({ snapshot: true })) db.remove(key);
  });
}

/** Waits for a write and its flush to disk. */
async function flushed(done: Promise<boolean>): Promise<void> {
  await Promise.all([done, (done as Promise<boolean> & { flushed?: PromiseLike<unknown> }).flushed]);
}

function count(db: Binary): number {
  return (db.getStats() as { entryCount: number }).entryCount;
}

/** Every record decodes and carries the model's fingerprint; returns how many there are. */
function checkRecords(db: Binary, where: string, options: MoveStateOptions): number {
  let keys = 0;
  const others = new Map<string, number>();
  for (const { key, value } of db.getRange({ snapshot: true })) {
    if (key.startsWith(RESERVED_KEY_PREFIX)) {
      throw new UsageError(
        `${where} holds the local state of serve in Kafka mode (changelog bookkeeping), which rollouts do not cover: its state follows the changelog topic`,
      );
    }
    const fingerprint = decodeStateRecord(value, key).fingerprint;
    if (fingerprint !== options.fingerprint) others.set(fingerprint, (others.get(fingerprint) ?? 0) + 1);
    keys++;
  }
  if (others.size > 0) {
    const list = [...others].map(([f, n]) => `${n} by ${f}`).join(', ');
    throw new StateError(
      'STATE_MODEL_MISMATCH',
      `${where} holds records written by another model than ${options.label} (${options.fingerprint}): ${list}; ` +
        'give --model the model file that wrote this state',
    );
  }
  return keys;
}

/** The single-model directory's own record of its model, when it names another. */
async function refuseOtherModelMeta(dir: string, options: MoveStateOptions): Promise<void> {
  const meta = await readStoreMeta(dir);
  if (meta && meta.model.fingerprint !== options.fingerprint) {
    throw new StateError(
      'STATE_MODEL_MISMATCH',
      `the state in ${dir} was written by model ${meta.model.label} (${meta.model.fingerprint}), not by ${options.label} (${options.fingerprint}): give --model that model's file`,
    );
  }
}

/** Both hold the same keys with the same bytes: an earlier run's copy that committed. */
function sameRecords(a: Binary, b: Binary, aKeys: number, bKeys: number): boolean {
  if (aKeys !== bKeys) return false;
  for (const { key, value } of a.getRange({ snapshot: true })) {
    const other = b.getBinary(key);
    if (!other || !Buffer.from(other).equals(value)) return false;
  }
  return true;
}

/**
 * LMDB lets several processes open one environment, so a running serve does not lock others out;
 * its reader slots (taken at its first read, kept while it runs) name its pid. A serve that has not
 * read yet, or one in another pid namespace, is not seen: the command is for a stopped service.
 */
function refuseInUse(env: RootDatabase<Buffer, string>, dir: string): void {
  env.readerCheck();
  const pids = new Set<number>();
  for (const line of env.readerList().split('\n')) {
    const pid = Number(line.trim().split(/\s+/)[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) pids.add(pid);
  }
  if (pids.size > 0) {
    throw new StateError(
      'STATE_IN_USE',
      `${dir} is open in process ${[...pids].join(', ')} (serve?): stop it, then run this again`,
    );
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the single-model directory's record of its model, durably, once its records are gone. */
async function removeStoreMeta(dir: string): Promise<void> {
  try {
    await unlink(join(dir, STORE_META_FILE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const parent = await openFile(dir, 'r');
  try {
    await parent.sync();
  } finally {
    await parent.close();
  }
}
