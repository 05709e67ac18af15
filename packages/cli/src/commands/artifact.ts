// `otalink artifact`: upload an update image to the backend (streamed, never read into memory) and list them.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ArtifactInfo, Page } from '@otalink/backend';
import {
  API_OPTIONS,
  API_USAGE,
  apiClientFrom,
  type CliIo,
  processIo,
  runApiCommand,
  UsageError,
} from './api-client.js';
import type { Command } from './command.js';

const USAGE = `Usage: otalink artifact upload FILE --name NAME --version VERSION --hardware-id ID [--hardware-id ID ...]
       otalink artifact list

Upload:
  --name NAME            artifact name (e.g. tcu-firmware)
  --version VERSION      its semantic version
  --hardware-id ID       hardware it fits; repeat or give a comma list
  --content-type TYPE    recorded with the artifact
  --json                 print the backend's answer as JSON

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
    if (sub !== 'upload') {
      throw new UsageError(
        sub === undefined ? 'a sub-command is needed: upload or list' : `unknown sub-command "${sub}"`,
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
  summary: 'upload update images to the backend and list them',
  run: (args) => runArtifact(args),
};
