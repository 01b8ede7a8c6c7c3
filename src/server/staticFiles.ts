import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The dashboard's own files: next to this module in `src/server/dashboard/`, copied to `dist/` by the build. */
const DASHBOARD_DIR = fileURLToPath(new URL('./dashboard/', import.meta.url));
const UPLOT_DIST = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.esm.js'));

/**
 * URL path → file, a fixed list: nothing outside it is ever read, so no request path can reach
 * other files. uPlot is served from the installed package; the page needs no network beyond this server.
 */
const ROUTES: Record<string, string> = {
  '/': join(DASHBOARD_DIR, 'index.html'),
  '/index.html': join(DASHBOARD_DIR, 'index.html'),
  '/app.js': join(DASHBOARD_DIR, 'app.js'),
  '/style.css': join(DASHBOARD_DIR, 'style.css'),
  '/vendor/uPlot.esm.js': join(UPLOT_DIST, 'uPlot.esm.js'),
  '/vendor/uPlot.min.css': join(UPLOT_DIST, 'uPlot.min.css'),
};

export interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
}

/** The dashboard file for a URL path, or undefined if the path is not one of them. Files are read once. */
export class DashboardFiles {
  private readonly cache = new Map<string, Promise<StaticFile>>();

  has(path: string): boolean {
    return Object.hasOwn(ROUTES, path);
  }

  get(path: string): Promise<StaticFile> | undefined {
    const file = ROUTES[path];
    if (!Object.hasOwn(ROUTES, path) || file === undefined) return undefined;
    let cached = this.cache.get(path);
    if (!cached) {
      const ext = file.slice(file.lastIndexOf('.'));
      cached = readFile(file).then((body) => ({ body, type: TYPES[ext] ?? 'application/octet-stream' }));
      cached.catch(() => this.cache.delete(path));
      this.cache.set(path, cached);
    }
    return cached;
  }
}
