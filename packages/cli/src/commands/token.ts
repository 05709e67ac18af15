// `otalink token`: create, list and revoke the backend's API tokens (an admin token is needed for all three).
import { parseArgs } from 'node:util';
import type { ApiTokenCreated, ApiTokenInfo } from '@otalink/backend';
import { API_OPTIONS, API_USAGE, apiClientFrom, type CliIo, processIo, runApiCommand } from './api-client.js';
import type { Command } from './command.js';
import { parseDurationSeconds, UsageError } from './usage.js';

const ROLES = ['viewer', 'operator', 'admin'] as const;

const USAGE = `Usage: otalink token create --name NAME --role viewer|operator|admin [--expires-in DURATION]
       otalink token list
       otalink token revoke ID

  create           prints the new token once (only its hash is kept): store it now
    --name NAME    who or what uses it (shown in lists and in the backend's log)
    --role ROLE    viewer: read only (GET, event streams); operator: also campaigns, artifacts, vehicles;
                   admin: also tokens
    --expires-in D refused from D after now (3600, 90s, 15m, 12h, 30d; 60 s to 10 years); default: never
  list             every token: id, role, name, created, expires, revoked (never the secrets)
  revoke ID        refused from now on, dashboard sessions opened with it end too
  --json           print the backend's answer as JSON

${API_USAGE}
  -h, --help      this help`;

function when(ms: number | undefined): string {
  return ms === undefined ? '-' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export async function runToken(args: string[], io: CliIo = processIo): Promise<number> {
  return runApiCommand('token', io, async () => {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...API_OPTIONS,
        name: { type: 'string' },
        role: { type: 'string' },
        'expires-in': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help === true) {
      io.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const [sub, ...rest] = positionals;
    const json = values.json === true;
    switch (sub) {
      case 'create': {
        if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
        if (values.name === undefined || values.name.trim() === '') throw new UsageError('create needs --name');
        const role = values.role;
        if (role === undefined || !(ROLES as readonly string[]).includes(role)) {
          throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
        }
        const lifetime = values['expires-in'];
        const expiresInSeconds = lifetime === undefined ? undefined : parseDurationSeconds(lifetime, '--expires-in');
        const client = await apiClientFrom(values, io.env);
        const created = await client.request<ApiTokenCreated>('POST', '/api/v1/tokens', {
          json: { name: values.name, role, ...(expiresInSeconds === undefined ? {} : { expiresInSeconds }) },
        });
        if (json) io.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
        else {
          io.stdout.write(`${created.token}\n`);
          io.stderr.write(
            `token ${created.info.id} (${created.info.role}, "${created.info.name}"` +
              `${created.info.expiresAt === undefined ? '' : `, expires ${when(created.info.expiresAt)}`}): shown once, store it now; ` +
              'use it as OTALINK_TOKEN, --token-file FILE or Authorization: Bearer <token>\n',
          );
        }
        return 0;
      }
      case 'list': {
        if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
        const client = await apiClientFrom(values, io.env);
        const { items } = await client.request<{ items: ApiTokenInfo[] }>('GET', '/api/v1/tokens');
        if (json) io.stdout.write(`${JSON.stringify(items, null, 2)}\n`);
        else {
          io.stdout.write(
            'ID                ROLE      CREATED               EXPIRES               REVOKED               NAME\n',
          );
          for (const t of items) {
            const dates = [t.createdAt, t.expiresAt, t.revokedAt].map((ms) => when(ms).padEnd(20)).join('  ');
            io.stdout.write(`${t.id}  ${t.role.padEnd(8)}  ${dates}  ${t.name}\n`);
          }
        }
        return 0;
      }
      case 'revoke': {
        const [id, ...extra] = rest;
        if (id === undefined) throw new UsageError('revoke needs a token ID (from `otalink token list`)');
        if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
        if (!/^[0-9a-f]{16}$/.test(id)) throw new UsageError(`a token ID is 16 hex digits, got "${id}"`);
        const client = await apiClientFrom(values, io.env);
        const revoked = await client.request<ApiTokenInfo>('DELETE', `/api/v1/tokens/${id}`);
        if (json) io.stdout.write(`${JSON.stringify(revoked, null, 2)}\n`);
        else io.stdout.write(`token ${revoked.id} (${revoked.name}) revoked at ${when(revoked.revokedAt)}\n`);
        return 0;
      }
      case undefined:
        throw new UsageError('a sub-command is needed: create, list or revoke');
      default:
        throw new UsageError(`unknown sub-command "${sub}"`);
    }
  });
}

export const token: Command = {
  run: (args) => runToken(args),
};
