import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Scope } from '../config/schema.js';
import { originAllowed, type Principal, presentedToken, type TokenTable } from './auth.js';
import type { ConnectionLimits } from './connectionLimits.js';
import type { HostAllowlist } from './hostAllowlist.js';

/** A WebSocket endpoint: the scope a token needs for it, its socket server and what to do with a connection. */
export interface SocketRoute {
  readonly scope: Scope;
  readonly wss: WebSocketServer;
  connected(ws: WebSocket, principal: Principal, url: URL): void;
}

export interface UpgradeDeps {
  readonly routes: ReadonlyMap<string, SocketRoute>;
  readonly tokens: TokenTable;
  readonly allowedOrigins: readonly string[];
  /** The Host names answered; undefined when tokens are configured (the token decides then). */
  readonly hosts: HostAllowlist | undefined;
  readonly limits: ConnectionLimits;
  /** Undefined when connections are accepted; else why not (starting, shutting down). */
  unavailable(): string | undefined;
  onRejected?(reason: RefusalReason): void;
  /** An unexpected exception while handling an upgrade; the request was answered 500. */
  onError?(err: unknown): void;
}

export type RefusalReason =
  | 'bad-request'
  | 'not-found'
  | 'host'
  | 'origin'
  | 'unauthorized'
  | 'forbidden'
  | 'unavailable'
  | 'capacity'
  | 'token-limit'
  | 'error';

/**
 * Decides on every WebSocket upgrade before the handshake: a refused request gets a plain HTTP
 * answer (400 for a target that is not a URL, 404, 403 for a foreign Host or Origin or a missing
 * scope, 401 for a missing or unknown token, 503 while unavailable or at a connection cap, 429
 * for a token at its own cap) and its socket is closed, so no WebSocket is ever opened for it. An
 * accepted upgrade holds a connection slot until its socket closes. Nothing a request carries can
 * make this throw out of the handler: an unexpected exception is answered 500 and reported.
 */
export function createUpgradeHandler(deps: UpgradeDeps) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node's HTTP server stops listening for errors on a socket it hands to 'upgrade'; a client
    // that resets a connection this refuses (or before ws takes it) would otherwise end the process.
    socket.on('error', destroyOnError);
    try {
      upgrade(deps, req, socket, head);
    } catch (err) {
      deps.onError?.(err);
      deps.onRejected?.('error');
      if (!socket.destroyed) refuse(socket, 500, 'internal error');
    }
  };
}

function upgrade(deps: UpgradeDeps, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const url = parseTarget(req.url);
  const decision: Refusal | Accepted = url
    ? decide(deps, req, url)
    : { status: 400, reason: 'bad-request', message: 'the request target is not a valid URL path' };
  if ('status' in decision) {
    deps.onRejected?.(decision.reason);
    refuse(socket, decision.status, decision.message);
    return;
  }
  const { route, principal } = decision;
  const slot = deps.limits.acquire(url!.pathname, deps.tokens.enabled ? principal.name : undefined);
  if ('status' in slot) {
    deps.onRejected?.(slot.reason);
    refuse(socket, slot.status, slot.message);
    return;
  }
  // The socket closes when the WebSocket does, and when a failed handshake is answered.
  socket.once('close', slot.release);
  if (socket.destroyed) slot.release();
  // ws watches the socket's errors from here on, and those of the WebSocket it makes of it.
  socket.removeListener('error', destroyOnError);
  route.wss.handleUpgrade(req, socket, head, (ws) => route.connected(ws, principal, url!));
}

/** A socket error (a reset by the client, mostly) ends that connection and nothing else. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** The request target as a URL, or undefined when it is not one (`GET http://[ HTTP/1.1`). */
export function parseTarget(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    return undefined;
  }
}

type Refusal = {
  readonly status: number;
  readonly reason: RefusalReason;
  readonly message: string;
};

type Accepted = { route: SocketRoute; principal: Principal };

function decide(deps: UpgradeDeps, req: IncomingMessage, url: URL): Refusal | Accepted {
  const route = deps.routes.get(url.pathname);
  if (!route)
    return { status: 404, reason: 'not-found', message: `no WebSocket endpoint at ${url.pathname}` };
  const unavailable = deps.unavailable();
  if (unavailable !== undefined) return { status: 503, reason: 'unavailable', message: unavailable };
  if (deps.hosts && !deps.hosts.allows(req)) {
    return { status: 403, reason: 'host', message: deps.hosts.refusal(req) };
  }
  if (!originAllowed(req, deps.allowedOrigins)) {
    return { status: 403, reason: 'origin', message: `origin ${req.headers.origin} is not allowed` };
  }
  const principal = deps.tokens.authenticate(presentedToken(req, url));
  if (!principal) return { status: 401, reason: 'unauthorized', message: 'a valid token is required' };
  if (!principal.scopes.has(route.scope)) {
    return {
      status: 403,
      reason: 'forbidden',
      message: `token '${principal.name}' lacks the '${route.scope}' scope`,
    };
  }
  return { route, principal };
}

function refuse(socket: Duplex, status: number, message: string): void {
  const body = `${message}\n`;
  const headers = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(status === 401 ? ['WWW-Authenticate: Bearer'] : []),
    ...(status === 503 || status === 429 ? ['Retry-After: 5'] : []),
  ];
  // Ending our side is not enough: the HTTP server lets sockets stay half-open, and one handed to
  // 'upgrade' has no timeout, so a client that never closes its side would hold it (and keep the
  // server's close, and so shutdown, waiting) for good.
  socket.once('finish', () => socket.destroy());
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}
