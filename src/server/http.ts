import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { SwitchResult } from '../engine/rollout.js';
import { StateError } from '../errors.js';
import { type StateStore, UNREADABLE_STATE_FINGERPRINT, unreadableStateReason } from '../state/types.js';
import { keyAllowed, originAllowed, presentedToken, type TokenTable } from './auth.js';
import type { HostAllowlist } from './hostAllowlist.js';
import type { LastPredictions } from './lastPredictions.js';
import type { ServeMetrics } from './metrics.js';
import type { DashboardFiles } from './staticFiles.js';
import { parseTarget } from './upgrade.js';

export interface HttpDeps {
  /** Undefined when ready (model loaded, store open), else why not. */
  notReadyReason(): string | undefined;
  readonly metrics: ServeMetrics;
  readonly tokens: TokenTable;
  /** The open store (for look-ups only), once there is one. */
  store(): Pick<StateStore, 'getMany'> | undefined;
  readonly lastPredictions: LastPredictions;
  /** The body of `GET /v1/stats`. */
  stats(): Promise<unknown>;
  /** Absent when the dashboard is disabled. */
  readonly dashboard?: DashboardFiles | undefined;
  /** The Host names answered; undefined when tokens are configured (the token decides then). */
  readonly hosts?: HostAllowlist | undefined;
  /** Promote and roll back, when several models run and the server is ready; else undefined. */
  admin?(): AdminActions | undefined;
  /** Origins whose pages may send admin requests (besides this server's own pages). */
  readonly allowedOrigins?: readonly string[];
  /** An unexpected exception while answering a request; the request was answered 500 (or cut). */
  onError?(err: unknown): void;
}

/** What `/admin/…` does; each switch resolves once durable. */
export interface AdminActions {
  promote(model: string | undefined): Promise<SwitchResult>;
  rollback(): Promise<SwitchResult>;
  status(): unknown;
}

/** Paths answered whatever the Host: probes may name the machine any way, and these carry no key data. */
const ANY_HOST = new Set(['/healthz', '/readyz']);

/**
 * The plain HTTP side of `serve`, on node:http: a handful of fixed routes does not need a router
 * dependency. `/healthz`, `/readyz`, `/metrics` and `/v1/stats` are open (no key names in them);
 * `/v1/keys/:key` needs a token with the `read` scope whose key prefix covers the key. Without
 * tokens, only requests naming this server in their Host are answered (but for the probes). An
 * unexpected exception is answered 500 and reported, never thrown out of the handler. Every answer
 * is small and written at once; Node's server stops reading a connection's further (pipelined)
 * requests while its answers wait to be written, so a client that does not read holds little.
 */
export function createRequestListener(deps: HttpDeps): RequestListener {
  return (req, res) => {
    const failed = (err: unknown) => {
      deps.onError?.(err);
      if (!res.headersSent) json(res, 500, { error: { code: 'INTERNAL', reason: 'internal error' } });
      else res.destroy();
    };
    try {
      handle(deps, req, res).catch(failed);
    } catch (err) {
      failed(err);
    }
  };
}

async function handle(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = parseTarget(req.url);
  if (!url) {
    json(res, 400, { error: { code: 'BAD_REQUEST', reason: 'the request target is not a valid URL path' } });
    return;
  }
  const path = url.pathname;
  if (deps.hosts && !ANY_HOST.has(path) && !deps.hosts.allows(req)) {
    json(res, 403, { error: { code: 'HOST_NOT_ALLOWED', reason: deps.hosts.refusal(req) } });
    return;
  }
  if (path.startsWith('/admin/')) {
    await admin(deps, req, res, url);
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', reason: `${req.method} is not supported` } });
    return;
  }
  if (path === '/healthz') {
    json(res, 200, { status: 'ok' });
    return;
  }
  if (path === '/readyz') {
    const reason = deps.notReadyReason();
    json(
      res,
      reason === undefined ? 200 : 503,
      reason === undefined ? { status: 'ready' } : { status: 'not ready', reason },
    );
    return;
  }
  if (path === '/metrics') {
    const body = await deps.metrics.registry.metrics();
    res.writeHead(200, { 'Content-Type': deps.metrics.registry.contentType });
    res.end(body);
    return;
  }
  if (path === '/v1/stats') {
    json(res, 200, await deps.stats());
    return;
  }
  if (path.startsWith('/v1/keys/')) {
    await keyLookup(deps, req, res, url);
    return;
  }
  const file = deps.dashboard?.get(path);
  if (file) {
    const { body, type } = await file;
    res.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-cache', 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  json(res, 404, { error: { code: 'NOT_FOUND', reason: `no route ${path}` } });
}

/**
 * `GET /v1/keys/:key[?state=1]`: the key's seq and last event time, how many events a warm start
 * derived its state from (when it was warmed), its last prediction if kept.
 */
async function keyLookup(deps: HttpDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  let key: string;
  try {
    key = decodeURIComponent(url.pathname.slice('/v1/keys/'.length));
  } catch {
    json(res, 400, { error: { code: 'BAD_REQUEST', reason: 'the key is not valid percent-encoding' } });
    return;
  }
  const principal = deps.tokens.authenticate(presentedToken(req, url));
  if (!principal) {
    res.setHeader('WWW-Authenticate', 'Bearer');
    json(res, 401, { error: { code: 'UNAUTHORIZED', reason: 'a valid token is required' } });
    return;
  }
  if (!principal.scopes.has('read') || !keyAllowed(principal, key)) {
    json(res, 403, {
      error: { code: 'FORBIDDEN', reason: `token '${principal.name}' may not read this key` },
    });
    return;
  }
  const store = deps.store();
  if (!store) {
    json(res, 503, { error: { code: 'SERVER_UNAVAILABLE', reason: 'the state store is not open yet' } });
    return;
  }
  let record: Awaited<ReturnType<typeof store.getMany>>[number];
  try {
    [record] = await store.getMany([key]);
  } catch (err) {
    // One key's unreadable record is that key's answer, as the engine makes it that key's events'
    // answer; it is not an unexpected failure of the server.
    if (!(err instanceof StateError && err.code === 'STATE_CORRUPT')) throw err;
    json(res, 500, { error: { code: err.code, reason: err.message } });
    return;
  }
  if (!record) {
    json(res, 404, { error: { code: 'NOT_FOUND', reason: `no state for key '${key}'` } });
    return;
  }
  // A key whose changelog record did not decode in a restore: answered as a corrupt record is.
  if (record.fingerprint === UNREADABLE_STATE_FINGERPRINT) {
    json(res, 500, { error: { code: 'STATE_CORRUPT', reason: unreadableStateReason(key, record) } });
    return;
  }
  const last = deps.lastPredictions.get(key);
  json(res, 200, {
    key,
    seq: record.seq,
    ts: record.ts,
    // A warmed key's state was computed from this many past events (`cellstream warm`).
    ...(record.warmedFrom !== undefined ? { warmedFrom: record.warmedFrom } : {}),
    ...(last && last.seq === record.seq && last.ts === record.ts ? { prediction: last } : {}),
    ...(url.searchParams.get('state') === '1' ? { state: Array.from(record.state) } : {}),
  });
}

/**
 * `POST /admin/promote[?model=NAME]`, `POST /admin/rollback` and `GET /admin/models`: need a token
 * with the `admin` scope (without tokens, loopback only, like everything else). A page of another
 * origin may not send them, so a browser visiting a hostile page cannot switch models. A switch is
 * answered once it is durable, with the event position it took effect at.
 */
async function admin(deps: HttpDeps, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const path = url.pathname;
  const method = path === '/admin/models' ? 'GET' : 'POST';
  if (!['/admin/promote', '/admin/rollback', '/admin/models'].includes(path)) {
    json(res, 404, { error: { code: 'NOT_FOUND', reason: `no route ${path}` } });
    return;
  }
  if (req.method !== method) {
    res.setHeader('Allow', method);
    json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', reason: `${path} takes ${method}` } });
    return;
  }
  const principal = deps.tokens.authenticate(presentedToken(req, url));
  if (!principal) {
    res.setHeader('WWW-Authenticate', 'Bearer');
    json(res, 401, { error: { code: 'UNAUTHORIZED', reason: 'a valid token is required' } });
    return;
  }
  if (!principal.scopes.has('admin')) {
    json(res, 403, {
      error: { code: 'FORBIDDEN', reason: `token '${principal.name}' lacks the admin scope` },
    });
    return;
  }
  if (!originAllowed(req, deps.allowedOrigins ?? [])) {
    json(res, 403, {
      error: { code: 'FORBIDDEN', reason: 'admin requests from this origin are not allowed' },
    });
    return;
  }
  const actions = deps.admin?.();
  if (!actions) {
    const reason = deps.notReadyReason();
    json(res, reason === undefined ? 409 : 503, {
      error: {
        code: reason === undefined ? 'NO_SHADOW' : 'SERVER_UNAVAILABLE',
        reason:
          reason ?? 'serve runs one model: configure a shadow (models, model.shadow or --shadow) to promote',
      },
    });
    return;
  }
  if (path === '/admin/models') {
    json(res, 200, actions.status());
    return;
  }
  try {
    const result =
      path === '/admin/promote'
        ? await actions.promote(url.searchParams.get('model') ?? undefined)
        : await actions.rollback();
    json(res, 200, result);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'CONFIG_INVALID') {
      json(res, 400, { error: { code: 'BAD_REQUEST', reason: (err as Error).message } });
      return;
    }
    json(res, 503, {
      error: {
        code: 'SERVER_UNAVAILABLE',
        reason: `the switch was not made durable: ${(err as Error).message}; the primary is unchanged, try again`,
      },
    });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
