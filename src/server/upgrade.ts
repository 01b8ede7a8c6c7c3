import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Scope } from '../config/schema.js';
import { originAllowed, type Principal, presentedToken, type TokenTable } from './auth.js';

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
  /** Undefined when connections are accepted; else why not (starting, shutting down). */
  unavailable(): string | undefined;
  onRejected?(reason: 'not-found' | 'origin' | 'unauthorized' | 'forbidden' | 'unavailable'): void;
}

/**
 * Decides on every WebSocket upgrade before the handshake: a refused request gets a plain HTTP
 * answer (404, 403 for a foreign Origin or a missing scope, 401 for a missing or unknown token,
 * 503 while unavailable) and its socket is closed, so no WebSocket is ever opened for it.
 */
export function createUpgradeHandler(deps: UpgradeDeps) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const decision = decide(deps, req, url);
    if ('status' in decision) {
      deps.onRejected?.(decision.reason);
      refuse(socket, decision.status, decision.message);
      return;
    }
    const { route, principal } = decision;
    route.wss.handleUpgrade(req, socket, head, (ws) => route.connected(ws, principal, url));
  };
}

type Refusal = {
  readonly status: number;
  readonly reason: Parameters<NonNullable<UpgradeDeps['onRejected']>>[0];
  readonly message: string;
};

function decide(
  deps: UpgradeDeps,
  req: IncomingMessage,
  url: URL,
): Refusal | { route: SocketRoute; principal: Principal } {
  const route = deps.routes.get(url.pathname);
  if (!route)
    return { status: 404, reason: 'not-found', message: `no WebSocket endpoint at ${url.pathname}` };
  const unavailable = deps.unavailable();
  if (unavailable !== undefined) return { status: 503, reason: 'unavailable', message: unavailable };
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
  ];
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
}
