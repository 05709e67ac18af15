// A whole OTA system on loopback for the campaign suite: a broker (ours or Mosquitto, given by URL), the backend
// engine (SQLite in a temp dir) behind its HTTPS server, its downloads from its worker thread's listener (optionally
// behind a cutting TLS proxy), one small signed artifact, and real agents (@otalink/agent, restarted in-process
// after activation) started one by one with per-vehicle overrides. Everything it starts is closed by close().
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { type AgentOptions, type AgentRunner, runAgent } from '@otalink/agent';
import {
  type ArtifactInfo,
  type Backend,
  type BackendService,
  type CampaignCreate,
  type CampaignView,
  createBackend,
  type ExecutionView,
  type RunningHttpServer,
  startHttpServer,
} from '@otalink/backend';
import type { TrustedKey } from '@otalink/ota';
import { type DevPki, loadOrCreateDevPki } from '@otalink/pki';
import { pino } from 'pino';
import { type CutProxy, startCutProxy } from './cut-proxy.js';

export const HARDWARE_ID = 'e2e-tcu-1';
export const MODEL = 'e2e-model-1';
export const FACTORY_VERSION = '1.0.0';
export const UPDATE_VERSION = '1.1.0';
const TERMINAL = new Set(['COMPLETED', 'CANCELED', 'ABORTED']);

export interface HarnessOptions {
  brokerUrl: string;
  /** Put a TLS proxy that cuts the first `cuts` artifact responses after `cutAfterBytes` in front of downloads. */
  cut?: { cuts: number; cutAfterBytes: number };
  artifactBytes?: number;
}

export interface Harness {
  home: string;
  pki: DevPki;
  backend: Backend;
  service: BackendService;
  artifact: ArtifactInfo;
  trustedKeys: TrustedKey[];
  proxy: CutProxy | undefined;
  /** Registers the vehicle (unless `register: false`) and starts its agent. */
  startVehicle(vin: string, overrides?: Partial<AgentOptions>, register?: boolean): Promise<AgentRunner>;
  campaign(vins: string[], extra?: Partial<CampaignCreate>): Promise<CampaignView>;
  waitForCampaignEnd(id: string, timeoutMs: number): Promise<CampaignView>;
  waitForExecution(
    id: string,
    vin: string,
    until: (e: ExecutionView) => boolean,
    timeoutMs: number,
  ): Promise<ExecutionView>;
  waitForOnline(vins: string[], timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Small deterministic artifact bytes (a tampered copy differs from these). */
export function artifactBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const home = await mkdtemp(join(tmpdir(), 'otalink-e2e-campaign-'));
  const closers: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const close of closers.reverse().splice(0)) await close().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  };
  try {
    const logger = pino({ level: process.env.OTA_E2E_LOG ?? 'silent' });
    const pki = await loadOrCreateDevPki(join(home, 'pki'));
    let backend: Backend | undefined;
    const late = new Proxy({} as BackendService, {
      get(_t, name) {
        if (backend === undefined) throw new Error('backend not created yet');
        const service = backend.service as unknown as Record<string | symbol, unknown>;
        const value = service[name];
        return typeof value === 'function' ? value.bind(service) : value;
      },
    });
    const http: RunningHttpServer = await startHttpServer({
      service: late,
      host: '127.0.0.1',
      port: 0,
      tls: { cert: pki.server.certPem, key: pki.server.keyPem },
    });
    closers.push(() => http.close());
    let proxy: CutProxy | undefined;
    if (options.cut !== undefined) {
      proxy = await startCutProxy({
        cert: pki.server.certPem,
        key: pki.server.keyPem,
        // The backend's download listener (started with the backend, below).
        target: () => ({ host: '127.0.0.1', port: Number(new URL(backend?.downloads?.url ?? 'http://x:0').port) }),
        ...options.cut,
      });
      const running = proxy;
      closers.push(() => running.close());
    }
    const created = createBackend({
      dataDir: join(home, 'backend'),
      mqtt: options.brokerUrl,
      vinMode: 'simulation',
      // Downloads from the backend's worker thread, as `otalink up` serves them; behind the cutting proxy in plain
      // HTTP (the proxy terminates TLS).
      downloads: {
        host: '127.0.0.1',
        port: 0,
        ...(options.cut === undefined ? { tls: { cert: pki.server.certPem, key: pki.server.keyPem } } : {}),
      },
      ...(proxy === undefined ? {} : { publicBaseUrl: proxy.url }),
      logger: logger.child({ component: 'backend' }),
    });
    backend = created;
    await created.start();
    closers.push(() => created.close());
    const service = created.service;
    const artifact = await service.putArtifact(artifactBytes(options.artifactBytes ?? 64 * 1024), {
      name: 'e2e update',
      version: UPDATE_VERSION,
      hardwareIds: [HARDWARE_ID],
      contentType: 'application/octet-stream',
    });
    const trustedKeys: TrustedKey[] = (await service.listSigningKeys()).map((key) => ({
      keyId: key.keyId,
      publicKey: new Uint8Array(Buffer.from(key.publicKey, 'base64')),
    }));
    const runners: AgentRunner[] = [];
    closers.push(async () => {
      await Promise.all(runners.map((r) => r.close().catch(() => undefined)));
    });

    const harness: Harness = {
      home,
      pki,
      backend: created,
      service,
      artifact,
      trustedKeys,
      proxy,
      async startVehicle(vin, overrides = {}, register = true) {
        if (register) {
          await service.registerVehicle({
            vin,
            model: MODEL,
            hardwareId: HARDWARE_ID,
            installedVersion: FACTORY_VERSION,
          });
        }
        const runner = await runAgent({
          vin,
          stateDir: join(home, 'vehicles', vin),
          hardwareId: HARDWARE_ID,
          model: MODEL,
          installedVersion: FACTORY_VERSION,
          trustedKeys,
          mqtt: { url: options.brokerUrl },
          download: { ca: pki.ca.certPem, initialDelayMs: 50, maxDelayMs: 200 },
          topics: { vinMode: 'simulation' },
          fsync: false,
          logger: logger.child({ component: 'agent' }),
          ...overrides,
        });
        runners.push(runner);
        return runner;
      },
      async campaign(vins, extra = {}) {
        const draft = await service.createCampaign({
          name: `e2e ${vins.length}`,
          artifact: artifact.sha256,
          target: { vins },
          ...extra,
        });
        return service.startCampaign(draft.id);
      },
      async waitForCampaignEnd(id, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        let view = await service.getCampaign(id);
        while (!TERMINAL.has(view.state) && Date.now() < deadline) {
          await delay(100);
          view = await service.getCampaign(id);
        }
        return view;
      },
      async waitForExecution(id, vin, until, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const { executions } = await service.executionHistory(id, vin);
          const latest = executions[0];
          if (latest !== undefined && until(latest)) return latest;
          if (Date.now() > deadline) {
            throw new Error(`execution of ${vin} not as expected in time: ${JSON.stringify(latest)}`);
          }
          await delay(100);
        }
      },
      async waitForOnline(vins, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const vehicles = await Promise.all(vins.map((vin) => service.getVehicle(vin)));
          if (vehicles.every((v) => v.online)) return;
          if (Date.now() > deadline) throw new Error('vehicles not online in time');
          await delay(100);
        }
      },
      close: closeAll,
    };
    return harness;
  } catch (error) {
    await closeAll();
    throw error;
  }
}
