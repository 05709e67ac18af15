// Serves the dashboard's few static files. The file list is read once at startup and only those names are served,
// so no request path ever reaches the file system (no traversal to guard against).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
};

interface StaticFile {
  body: Buffer;
  type: string;
}

function load(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!statSync(path).isFile()) continue;
    const type = TYPES[extname(name)];
    if (type === undefined) continue;
    // A handful of small files: holding them in memory beats a disk read per request.
    files.set(name, { body: readFileSync(path), type });
  }
  return files;
}

/** Registers GET `/` (index.html) and GET `/<file>` for each file of `dir`. */
export function registerStaticFiles(app: FastifyInstance, dir: string): void {
  const files = load(dir);
  for (const [name, file] of files) {
    const urls = name === 'index.html' ? ['/', '/index.html'] : [`/${name}`];
    for (const url of urls) {
      app.get(url, { schema: { hide: true } }, async (_request, reply) => {
        reply
          .header('content-type', file.type)
          .header('cache-control', 'no-cache')
          .header('x-content-type-options', 'nosniff');
        return reply.send(file.body);
      });
    }
  }
}
