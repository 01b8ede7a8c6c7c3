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
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    text = await res.text();
  } catch (err) {
    // fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, …) is its cause.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    io.stderr.write(
      `cellstream ${action}: cannot reach serve at ${url.origin} (${why}): is it running, and is --url right?\n`,
    );
    return 1;
  }
  if (res.ok) {
    io.stdout.write(`${text}\n`);
    return 0;
  }
  io.stderr.write(`cellstream ${action}: ${res.status} ${text}\n`);
  if (res.status === 401 || res.status === 403) {
    io.stderr.write(
      token
        ? `the token in ${flags.tokenEnv} was refused: it needs the admin scope\n`
        : `no token was sent: put a token with the admin scope in ${flags.tokenEnv} (--token-env names another variable)\n`,
    );
  }
  return 1;
}
