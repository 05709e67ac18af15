// Test support: a small HTTPS artifact server with Range, ETag and If-Range, whose links can be cut after a given
// number of body bytes, with a self-signed certificate made by the openssl CLI at test time.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  cert: string;
  key: string;
}

/** A self-signed certificate (it is its own CA), by default for 127.0.0.1 and localhost. */
export function makeCertificate(altNames = 'IP:127.0.0.1,DNS:localhost'): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'otalink-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        `subjectAltName=${altNames}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface RequestRecord {
  path: string;
  range: string | undefined;
  ifRange: string | undefined;
  status: number;
  /** The Connection header the client sent. */
  connection: string | undefined;
}

export interface ArtifactServer {
  /** https://127.0.0.1:port (or http://). */
  readonly origin: string;
  readonly ca: string | undefined;
  readonly requests: RequestRecord[];
  /** Body bytes written so far, all requests together. */
  readonly bytesServed: number;
  url(path: string): string;
  /** Serves (or replaces, with a new ETag) the bytes at `path`. */
  put(path: string, bytes: Uint8Array): void;
  /** Cuts the connection after this many body bytes for the next `times` requests. */
  cutAfter(bytes: number, times: number): void;
  /** Answers the next `times` requests with this status. */
  failWith(status: number, times: number): void;
  /** Sends this many extra bytes after the artifact (an endless-data attack). */
  appendGarbage(bytes: number): void;
  /** Delays each response body chunk (a slow link), in ms per 16 KiB. */
  slow(msPerChunk: number): void;
  close(): Promise<void>;
}

export async function startArtifactServer(options: { http?: boolean; certificate?: TestCertificate } = {}) {
  const files = new Map<string, { bytes: Buffer; etag: string }>();
  const requests: RequestRecord[] = [];
  let cut: { bytes: number; times: number } | undefined;
  let fail: { status: number; times: number } | undefined;
  let garbage = 0;
  let slowMs = 0;
  let bytesServed = 0;
  const sockets = new Set<Socket>();
  const certificate = options.http ? undefined : (options.certificate ?? makeCertificate());

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const range = req.headers.range;
    const ifRangeHeader = req.headers['if-range'];
    const ifRange = Array.isArray(ifRangeHeader) ? ifRangeHeader[0] : ifRangeHeader;
    const record: RequestRecord = { path, range, ifRange, status: 0, connection: req.headers.connection };
    requests.push(record);
    const send = (status: number, headers: Record<string, string | number> = {}) => {
      record.status = status;
      res.writeHead(status, headers);
    };
    if (fail !== undefined && fail.times > 0) {
      fail.times -= 1;
      send(fail.status);
      res.end();
      return;
    }
    const file = files.get(path);
    if (file === undefined) {
      send(404);
      res.end();
      return;
    }
    let start = 0;
    let partial = false;
    const match = range === undefined ? null : /^bytes=(\d+)-$/.exec(range);
    if (match !== null && (ifRange === undefined || ifRange === file.etag)) {
      start = Number(match[1]);
      if (start >= file.bytes.length) {
        send(416, { 'content-range': `bytes */${file.bytes.length}` });
        res.end();
        return;
      }
      partial = true;
    }
    const body = Buffer.concat([file.bytes.subarray(start), Buffer.alloc(garbage, 0x41)]);
    const headers: Record<string, string | number> = { etag: file.etag, 'accept-ranges': 'bytes' };
    if (partial) headers['content-range'] = `bytes ${start}-${file.bytes.length - 1}/${file.bytes.length}`;
    send(partial ? 206 : 200, headers);
    const cutAt = cut !== undefined && cut.times > 0 ? cut.bytes : undefined;
    if (cut !== undefined && cut.times > 0) cut.times -= 1;
    void (async () => {
      const chunk = 16 * 1024;
      for (let offset = 0; offset < body.length; offset += chunk) {
        let piece = body.subarray(offset, Math.min(body.length, offset + chunk));
        if (cutAt !== undefined && offset + piece.length > cutAt) {
          piece = piece.subarray(0, Math.max(0, cutAt - offset));
          if (piece.length > 0) await new Promise<void>((resolve) => res.write(piece, () => resolve()));
          bytesServed += piece.length;
          req.socket.destroy();
          return;
        }
        await new Promise<void>((resolve) => res.write(piece, () => resolve()));
        bytesServed += piece.length;
        if (slowMs > 0) await new Promise((resolve) => setTimeout(resolve, slowMs));
        if (res.destroyed) return;
      }
      res.end();
    })();
  };

  const server = certificate === undefined ? createHttpServer(handler) : createHttpsServer(certificate, handler);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const origin = `${certificate === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
  const api: ArtifactServer = {
    origin,
    ca: certificate?.cert,
    requests,
    get bytesServed() {
      return bytesServed;
    },
    url: (path) => `${origin}${path}`,
    put(path, bytes) {
      const buffer = Buffer.from(bytes);
      files.set(path, { bytes: buffer, etag: `"${createHash('sha256').update(buffer).digest('hex').slice(0, 16)}"` });
    },
    cutAfter(bytes, times) {
      cut = { bytes, times };
    },
    failWith(status, times) {
      fail = { status, times };
    },
    appendGarbage(bytes) {
      garbage = bytes;
    },
    slow(ms) {
      slowMs = ms;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return api;
}
