// `otalink artifact`: upload an update image to the backend (streamed, never read into memory) and list them.
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ArtifactInfo, Page, SigningKey } from '@otalink/backend';
import { API_OPTIONS, API_USAGE, apiClientFrom, type CliIo, processIo, runApiCommand } from './api-client.js';
import type { Command } from './command.js';
import { UsageError } from './usage.js';

const USAGE = `Usage: otalink artifact upload FILE --name NAME --version VERSION --hardware-id ID [--hardware-id ID ...]
       otalink artifact list
       otalink artifact keys [--out DIR]

Upload:
  --name NAME            artifact name (e.g. tcu-firmware)
  --version VERSION      its semantic version
  --hardware-id ID       hardware it fits; repeat or give a comma list
  --content-type TYPE    recorded with the artifact
  --json                 print the backend's answer as JSON

Keys (the manifest signing keys vehicles must trust):
  --out DIR              write each public key to DIR/<keyId>.pub.pem and print the --trusted-key arguments
                         for otalink agent and otalink sim

${API_USAGE}
  -h, --help      this help`;

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export async function runArtifact(args: string[], io: CliIo = processIo): Promise<number> {
  return runApiCommand('artifact', io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...API_OPTIONS,
        name: { type: 'string' },
        version: { type: 'string' },
        'hardware-id': { type: 'string', multiple: true },
        'content-type': { type: 'string' },
        json: { type: 'boolean' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help === true) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const [sub, ...rest] = positionals;
    if (sub === 'list') {
      if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
      const client = await apiClientFrom(values, io.env);
      const items: ArtifactInfo[] = [];
      let cursor: string | undefined;
      do {
        const query = cursor === undefined ? '' : `?cursor=${encodeURIComponent(cursor)}`;
        const page = await client.request<Page<ArtifactInfo>>('GET', `/api/v1/artifacts${query}`);
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      if (values.json === true) io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
      else
        for (const a of items)
          io.stdout.write(`${a.sha256}  ${a.name} ${a.version}  ${formatSize(a.size)}  ${a.hardwareIds.join(',')}\n`);
      return 0;
    }
    if (sub === 'keys') {
      if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
      const client = await apiClientFrom(values, io.env);
      const { items } = await client.request<{ items: SigningKey[] }>('GET', '/api/v1/signing-keys');
      if (values.json === true) {
        io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        return 0;
      }
      const out = values.out;
      if (out !== undefined) await mkdir(out, { recursive: true });
      for (const key of items) {
        if (out === undefined) {
          io.stdout.write(`${key.keyId}${key.active ? '  (active)' : ''}\n${key.publicKeyPem.trimEnd()}\n`);
          continue;
        }
        const file = join(out, `${key.keyId.replace(/[^A-Za-z0-9._-]/g, '_')}.pub.pem`);
        await writeFile(file, key.publicKeyPem);
        io.stdout.write(`--trusted-key ${key.keyId}=${file}\n`);
      }
      return 0;
    }
    if (sub !== 'upload') {
      throw new UsageError(
        sub === undefined ? 'a sub-command is needed: upload, list or keys' : `unknown sub-command "${sub}"`,
      );
    }
    const [file, ...extra] = rest;
    if (file === undefined) throw new UsageError('upload needs the FILE to upload');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    if (values.name === undefined) throw new UsageError('--name is required');
    if (values.version === undefined) throw new UsageError('--version is required');
    const hardwareIds = (values['hardware-id'] ?? [])
      .flatMap((h) => h.split(','))
      .map((h) => h.trim())
      .filter((h) => h.length > 0);
    if (hardwareIds.length === 0) throw new UsageError('at least one --hardware-id is required');
    let size: number;
    try {
      const info = await stat(file);
      if (!info.isFile()) throw new Error('not a regular file');
      size = info.size;
    } catch (error) {
      throw new UsageError(`${file}: ${(error as Error).message}`);
    }
    const client = await apiClientFrom(values, io.env);
    const query = new URLSearchParams({
      name: values.name,
      version: values.version,
      hardwareIds: hardwareIds.join(','),
    });
    if (values['content-type'] !== undefined) query.set('contentType', values['content-type']);
    const info = await client.request<ArtifactInfo>('POST', `/api/v1/artifacts?${query}`, {
      stream: createReadStream(file),
      contentLength: size,
    });
    if (values.json === true) {
      io.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    } else {
      io.stdout.write(
        `uploaded ${info.name} ${info.version} (${formatSize(info.size)}) for ${info.hardwareIds.join(', ')}\n` +
          `sha256 ${info.sha256}\n`,
      );
    }
    return 0;
  });
}

export const artifact: Command = {
  run: (args) => runArtifact(args),
};
