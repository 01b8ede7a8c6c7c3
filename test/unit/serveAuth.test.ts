import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { keyAllowed, originAllowed, presentedToken, sha256, TokenTable } from '../../src/server/auth.js';
import { TokenBucket } from '../../src/server/tokenBucket.js';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe('TokenBucket', () => {
  it('allows a burst, then the sustained rate, refilling with time', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 20, () => now);
    expect(bucket.take(20)).toBe(true);
    expect(bucket.take(1)).toBe(false);
    now += 500;
    expect(bucket.take(5)).toBe(true);
    expect(bucket.take(1)).toBe(false);
    now += 60_000;
    expect(bucket.take(21)).toBe(false);
    expect(bucket.take(20)).toBe(true);
  });
});

describe('TokenTable', () => {
  const table = TokenTable.fromConfig(
    [
      { name: 'plain', token: 'plain-token-0123456789', scopes: ['ingest'] },
      {
        name: 'hashed',
        sha256: sha256('hashed-token-0123456789').toString('hex'),
        scopes: ['subscribe'],
        keyPrefix: 'a-',
      },
      { name: 'env', env: 'T', scopes: ['read'] },
    ],
    { T: 'env-token-0123456789' },
  );

  it('knows each configured token, however its secret was given, and nothing else', () => {
    expect(table.authenticate('plain-token-0123456789')?.name).toBe('plain');
    expect(table.authenticate('hashed-token-0123456789')).toMatchObject({ name: 'hashed', keyPrefix: 'a-' });
    expect(table.authenticate('env-token-0123456789')?.scopes.has('read')).toBe(true);
    expect(table.authenticate('plain-token-012345678')).toBeUndefined();
    expect(table.authenticate('')).toBeUndefined();
    expect(table.authenticate(undefined)).toBeUndefined();
  });

  it('lets everyone do everything when no token is configured', () => {
    const open = TokenTable.fromConfig([]);
    expect(open.enabled).toBe(false);
    expect([...open.authenticate(undefined)!.scopes]).toEqual(['ingest', 'subscribe', 'read', 'admin']);
  });

  it('restricts keys to the prefix', () => {
    const p = table.authenticate('hashed-token-0123456789')!;
    expect(keyAllowed(p, 'a-1')).toBe(true);
    expect(keyAllowed(p, 'b-1')).toBe(false);
  });
});

describe('request checks', () => {
  it('reads a bearer token or the access_token parameter', () => {
    const url = new URL('http://h/ingest?access_token=q');
    expect(presentedToken(request({ authorization: 'Bearer abc ' }), url)).toBe('abc');
    expect(presentedToken(request({ authorization: 'Basic abc' }), url)).toBeUndefined();
    expect(presentedToken(request({}), url)).toBe('q');
  });

  it('allows no Origin, its own, listed ones and * ; refuses others', () => {
    const allowed = ['https://ops.example.com'];
    expect(originAllowed(request({ host: 'h:8080' }), allowed)).toBe(true);
    expect(originAllowed(request({ host: 'h:8080', origin: 'http://h:8080' }), allowed)).toBe(true);
    expect(originAllowed(request({ host: 'h:8080', origin: 'https://ops.example.com' }), allowed)).toBe(true);
    expect(originAllowed(request({ host: 'h:8080', origin: 'https://evil.example.com' }), allowed)).toBe(
      false,
    );
    expect(originAllowed(request({ host: 'h:8080', origin: 'http://h:8081' }), allowed)).toBe(false);
    expect(originAllowed(request({ host: 'h:8080', origin: 'https://evil.example.com' }), ['*'])).toBe(true);
  });
});
