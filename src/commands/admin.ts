import { UsageError } from '../errors.js';

export interface AdminFlags {
  readonly url: string;
  readonly tokenEnv: string;
  readonly model?: string;
}

/**
 * `cellstream promote` and `cellstream rollback`: ask a running `serve` to switch its primary
 * model, over the admin endpoint, and print the answer (the models and the event position the
 * switch took effect at). Resolves with the exit status: 0 once the switch is durable, 1 otherwise.
 */
export async function runAdmin(
  action: 'promote' | 'rollback',
  flags: AdminFlags,
  io: { readonly stdout: NodeJS.WritableStream; readonly stderr: NodeJS.WritableStream },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let url: URL;
  try {
    url = new URL(`/admin/${action}`, flags.url);
  } catch {
    throw new UsageError(`--url ${flags.url} is not a URL such as http://127.0.0.1:8080`);
  }
  if (flags.model !== undefined) url.searchParams.set('model', flags.model);
  const token = env[flags.tokenEnv];
  const res = await fetch(url, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  if (res.ok) {
    io.stdout.write(`${text}\n`);
    return 0;
  }
  io.stderr.write(`cellstream ${action}: ${res.status} ${text}\n`);
  return 1;
}
