// Raw reads of an LMDB environment, for tests that compare a store's bytes before and after it
// is moved (cellstream state adopt / retire).
import { open } from 'lmdb';

/** Every record of one LMDB database (the root one, or the named `db`) as key → bytes; none when absent. */
export function lmdbRecords(path: string, db?: string): Map<string, Buffer> {
  const env = open<Buffer, string>({ path, encoding: 'binary', maxDbs: 40 });
  try {
    const src = db === undefined ? env : env.openDB<Buffer, string>({ name: db, encoding: 'binary' });
    const out = new Map<string, Buffer>();
    for (const { key, value } of src.getRange({ snapshot: true })) out.set(key, Buffer.from(value));
    return out;
  } finally {
    void env.close();
  }
}
