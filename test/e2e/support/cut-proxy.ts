// A TLS-terminating loopback proxy in front of the backend's plain-HTTP listener, standing in for a CDN edge on a
// bad cell link: it reads each request head (so a test sees the Range headers the vehicle sent) and cuts the first
// `cuts` artifact responses after `cutAfterBytes` bytes, the way a dropped link would.
import { connect, type Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';

export interface CutProxyOptions {
  cert: string;
  key: string;
  /** The backend's plain HTTP listener. */
  target: () => { host: string; port: number };
  /** Responses to cut (connections carrying GET /…artifacts…). */
  cuts: number;
  cutAfterBytes: number;
}

export interface SeenRequest {
  method: string;
  path: string;
  range: string | undefined;
  cut: boolean;
}

export interface CutProxy {
  url: string;
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

export async function startCutProxy(options: CutProxyOptions): Promise<CutProxy> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let cutsLeft = options.cuts;
  const server = createServer({ cert: options.cert, key: options.key }, (client: TLSSocket) => {
    const { host, port } = options.target();
    const upstream = connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    let cutting = false;
    const drop = () => {
      // A cut response is ended (FIN) rather than destroyed: a reset would also discard the bytes the vehicle has
      // not read yet, and on a loaded machine that can be all of them, so no attempt would get further than the last.
      if (!cutting) client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    let head = '';
    let cutThis = false;
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      // One request per connection is enough here: the downloader opens a new connection per attempt.
      if (!head.includes('\r\n\r\n')) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0) {
          const lines = head.slice(0, end).split('\r\n');
          const [method = '', path = ''] = (lines[0] ?? '').split(' ');
          const rangeLine = lines.find((l) => /^range:/i.test(l));
          cutThis = method === 'GET' && path.includes('/artifacts/') && cutsLeft > 0;
          if (cutThis) cutsLeft--;
          requests.push({ method, path, range: rangeLine?.replace(/^range:\s*/i, ''), cut: cutThis });
        }
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (cutThis && sent + chunk.length >= options.cutAfterBytes) {
        if (cutting) return;
        cutting = true;
        client.end(chunk.subarray(0, Math.max(0, options.cutAfterBytes - sent)));
        sent = options.cutAfterBytes;
        drop();
        return;
      }
      sent += chunk.length;
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no address');
  return {
    url: `https://127.0.0.1:${address.port}`,
    requests,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
