// A WebSocket front end for the fake broker: each WebSocket's bytes are relayed to it over TCP, as a proxy in
// front of a broker would, and a line the broker drops ends its WebSocket at once (as a lost line, no close frame).
import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { WebSocketServer } from 'ws';
import type { FakeBroker } from './fake-broker.js';

export interface WebSocketRelay {
  /** ws:// URL of the relay, path /mqtt. */
  url: string;
  /** The Sec-WebSocket-Protocol values connections asked for, each once (a list per connection would grow). */
  protocols: Set<string>;
  close(): Promise<void>;
}

export async function webSocketRelay(broker: FakeBroker): Promise<WebSocketRelay> {
  const protocols = new Set<string>();
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws, request) => {
    protocols.add(String(request.headers['sec-websocket-protocol']));
    const upstream = tcpConnect({ host: '127.0.0.1', port: broker.port });
    ws.on('message', (data: Buffer) => upstream.write(data));
    upstream.on('data', (d) => ws.send(d));
    ws.on('close', () => upstream.destroy());
    upstream.on('close', () => ws.terminate());
    upstream.on('error', () => ws.terminate());
  });
  await once(wss, 'listening');
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/mqtt`,
    protocols,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
