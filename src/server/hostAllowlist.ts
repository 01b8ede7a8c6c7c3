import type { IncomingMessage } from 'node:http';

/** Names of this machine a loopback client may use; `[::1]` as a Host header writes it. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/**
 * Which `Host` headers the server answers when it serves without tokens. Without a token, nothing
 * but the Host tells a request from a page of another site whose DNS name was re-pointed at this
 * machine (DNS rebinding): the browser then sends that site's name as Host, and considers the
 * page and the server the same origin. So only names of this server are answered: the loopback
 * names at its port, and the configured `server.allowedHosts` (an entry without a port matches any
 * port; `*` turns the check off). A request without a Host header (HTTP/1.0; never a browser) passes.
 */
export class HostAllowlist {
  private readonly exact: ReadonlySet<string>;
  private readonly anyPort: ReadonlySet<string>;
  private readonly anyHost: boolean;

  constructor(configured: readonly string[], port: number) {
    const exact = new Set(LOOPBACK_NAMES.map((name) => `${name}:${port}`));
    // Browsers leave the port out of Host when it is the scheme's default.
    if (port === 80) for (const name of LOOPBACK_NAMES) exact.add(name);
    const anyPort = new Set<string>();
    for (const entry of configured) {
      const host = entry.toLowerCase();
      if (/:\d+$/.test(host)) exact.add(host);
      else anyPort.add(host);
    }
    this.exact = exact;
    this.anyPort = anyPort;
    this.anyHost = configured.includes('*');
  }

  /** Whether `req`'s Host header names this server. */
  allows(req: IncomingMessage): boolean {
    const host = req.headers.host?.toLowerCase();
    if (host === undefined || this.anyHost || this.exact.has(host)) return true;
    return this.anyPort.has(host.replace(/:\d+$/, ''));
  }

  /** The reason given to a refused request. */
  refusal(req: IncomingMessage): string {
    return (
      `Host '${String(req.headers.host).slice(0, 100)}' is not a name of this server; without tokens it ` +
      `answers only ${[...this.exact, ...this.anyPort].join(', ')}. Add the name to server.allowedHosts, ` +
      'or configure auth.tokens'
    );
  }
}
