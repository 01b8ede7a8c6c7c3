// Talking to a server the way a hostile or careless client does: raw bytes on a TCP socket,
// HTTP requests with a forged Host header.
import { request } from 'node:http';
import { type Socket, connect as tcpConnect } from 'node:net';

/** Writes `text` on a fresh TCP connection and resolves with everything the server sends until it closes. */
export function rawExchange(port: number, text: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString());
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString());
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString());
    });
  });
}

/** A GET with the given headers (Host included, which fetch will not forge); resolves with status and body. */
export function httpGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `condition` every 20 ms until it holds or `timeoutMs` passes; resolves with whether it held. */
export async function eventually(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return condition();
}

/**
 * Sends `text` on a fresh TCP connection, then resets it (RST, not a FIN): at once, or once the
 * server has answered. Resolves when the connection is gone, with what the server sent meanwhile.
 */
export function resetAfter(port: number, text: string, when: 'at-once' | 'after-answer'): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = tcpConnect(port, '127.0.0.1', () => {
      socket.write(text);
      if (when === 'at-once') socket.resetAndDestroy();
    });
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (when === 'after-answer') socket.resetAndDestroy();
    });
    // The reset is ours; the server may have written into it.
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

/**
 * Sends `text` on a fresh TCP connection that the client never closes from its side (half-open:
 * it keeps it after the server's FIN). Resolves with what the server sent, once the server has
 * ended its side, and the socket, for the caller to destroy.
 */
export function halfOpenExchange(port: number, text: string): Promise<{ answer: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve({ answer: Buffer.concat(chunks).toString(), socket }));
    socket.on('error', reject);
  });
}
