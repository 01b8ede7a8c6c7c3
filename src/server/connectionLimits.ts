/** Why a connection was refused by `ConnectionLimits`, with the HTTP status to answer. */
export interface CapacityRefusal {
  /** 503 for the server's or the endpoint's cap (anyone may get a slot later), 429 for a token's own. */
  readonly status: 503 | 429;
  readonly reason: 'capacity' | 'token-limit';
  readonly message: string;
}

export interface ConnectionCaps {
  /** WebSocket connections at once, every endpoint together. */
  readonly overall: number;
  /** Connections at once per endpoint path; a path not listed has only the overall cap. */
  readonly perEndpoint: ReadonlyMap<string, number>;
  /** Connections at once per token name; undefined when no tokens are configured (no per-token cap). */
  readonly perToken: number | undefined;
}

/**
 * Counts open WebSocket connections, overall, per endpoint and per token, and decides whether one
 * more may open. A slot is taken before the handshake and given back exactly once, when the
 * connection (or the failed handshake) ends, so a flood of upgrades can never hold more sockets
 * than the caps allow.
 */
export class ConnectionLimits {
  private total = 0;
  private readonly byEndpoint = new Map<string, number>();
  private readonly byToken = new Map<string, number>();

  constructor(private readonly caps: ConnectionCaps) {}

  /** Connections counted now (handshakes in progress included). */
  get open(): number {
    return this.total;
  }

  /**
   * Takes a slot for a connection to `endpoint` by `token` (undefined: anonymous), or says why not.
   * The returned `release` gives the slot back; calling it again does nothing.
   */
  acquire(endpoint: string, token: string | undefined): CapacityRefusal | { release: () => void } {
    const { overall, perEndpoint, perToken } = this.caps;
    if (this.total >= overall) {
      return {
        status: 503,
        reason: 'capacity',
        message: `the server is at its limit of at most ${overall} WebSocket connections (server.maxConnections); try again later`,
      };
    }
    const endpointCap = perEndpoint.get(endpoint);
    const atEndpoint = this.byEndpoint.get(endpoint) ?? 0;
    if (endpointCap !== undefined && atEndpoint >= endpointCap) {
      return {
        status: 503,
        reason: 'capacity',
        message: `${endpoint} is at its limit of at most ${endpointCap} connections; try again later`,
      };
    }
    const counted = perToken !== undefined && token !== undefined;
    const ofToken = counted ? (this.byToken.get(token) ?? 0) : 0;
    if (counted && ofToken >= perToken) {
      return {
        status: 429,
        reason: 'token-limit',
        message: `token '${token}' already has ${ofToken} connections, at most ${perToken} (auth.maxConnectionsPerToken); close one first`,
      };
    }
    this.total++;
    this.byEndpoint.set(endpoint, atEndpoint + 1);
    if (counted) this.byToken.set(token, ofToken + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        decrement(this.byEndpoint, endpoint);
        if (counted) decrement(this.byToken, token);
      },
    };
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n === 0) counts.delete(key);
  else counts.set(key, n);
}
