import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { Config, Scope, TokenConfig } from '../config/schema.js';
import { SCOPES } from '../config/schema.js';
import { ConfigError } from '../errors.js';

/** Who a request acts as: a configured token's name, scopes and key prefix. */
export interface Principal {
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** Keys this principal may write or see start with this; absent means every key. */
  readonly keyPrefix?: string | undefined;
}

/** With no tokens configured, everyone may do everything (loopback-only unless `allowInsecure`). */
const ANONYMOUS: Principal = { name: 'anonymous', scopes: new Set(SCOPES) };

interface Entry {
  readonly digest: Buffer;
  readonly principal: Principal;
}

/**
 * The configured tokens, kept only as SHA-256 digests. A presented token is hashed and compared
 * with every digest in constant time, so neither the comparison nor the number of digests
 * compared leaks where a guess went wrong.
 */
export class TokenTable {
  private constructor(private readonly entries: readonly Entry[]) {}

  /** Resolves each token's secret (`env` tokens from `env`); a missing variable is a `ConfigError`. */
  static fromConfig(tokens: readonly TokenConfig[], env: NodeJS.ProcessEnv = process.env): TokenTable {
    return new TokenTable(
      tokens.map((t, i) => {
        let digest: Buffer;
        if (t.sha256 !== undefined) digest = Buffer.from(t.sha256, 'hex');
        else if (t.token !== undefined) digest = sha256(t.token);
        else {
          const secret = env[t.env!];
          if (secret === undefined || secret === '') {
            throw new ConfigError(
              `auth.tokens.${i}.env: token '${t.name}' reads environment variable ${t.env}, which is not set`,
            );
          }
          digest = sha256(secret);
        }
        return { digest, principal: { name: t.name, scopes: new Set(t.scopes), keyPrefix: t.keyPrefix } };
      }),
    );
  }

  /** Whether any token is configured; without one every request is `ANONYMOUS`. */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The principal a presented token stands for, or undefined for a missing or unknown token. */
  authenticate(token: string | undefined): Principal | undefined {
    if (!this.enabled) return ANONYMOUS;
    if (token === undefined || token === '') return undefined;
    const digest = sha256(token);
    let found: Principal | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, digest) && found === undefined) found = entry.principal;
    }
    return found;
  }
}

/** SHA-256 of a token, as `sha256` in a config file expects it (hex of this digest). */
export function sha256(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * The token a request presents: `Authorization: Bearer …`, or the `access_token` query parameter
 * for browsers, whose WebSocket API cannot set headers.
 */
export function presentedToken(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(header);
    return m ? m[1].trim() : undefined;
  }
  return url.searchParams.get('access_token') ?? undefined;
}

/**
 * Whether a request's `Origin` may open a socket: requests without one (not from a browser) may,
 * as may a page served by this server itself and the configured `allowedOrigins` (`'*'`: any).
 * This stops other web sites from using a visitor's browser against the server.
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (allowed.includes('*')) return true;
  const host = req.headers.host;
  if (host !== undefined && (origin === `http://${host}` || origin === `https://${host}`)) return true;
  return allowed.some((a) => sameOrigin(a, origin));
}

function sameOrigin(a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin;
  } catch {
    return false;
  }
}

/** Whether a principal may see or write `key`. */
export function keyAllowed(principal: Principal, key: string): boolean {
  return principal.keyPrefix === undefined || key.startsWith(principal.keyPrefix);
}

/**
 * Refuses to serve without tokens on an address other machines can reach, unless the
 * configuration says `server.allowInsecure: true`.
 */
export function checkExposure(config: Config): void {
  if (config.auth.tokens.length > 0 || config.server.allowInsecure || isLoopback(config.server.host)) return;
  throw new ConfigError(
    `server.host is '${config.server.host}', which other machines can reach, and auth.tokens is empty: ` +
      'anyone could write events and read predictions. Configure auth.tokens (or CELLSTREAM_TOKENS), bind ' +
      'to 127.0.0.1, or set server.allowInsecure: true (CELLSTREAM_ALLOW_INSECURE=1) to serve openly anyway.',
  );
}

/** Whether `host` names only this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./i.test(bare);
  return false;
}
