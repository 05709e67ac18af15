// docs/ota-protocol.md is the spec: its examples must parse, its field tables must list exactly the schema's fields,
// and its example signature must verify with its example key, so the page and the code cannot drift apart.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { TObject } from '@sinclair/typebox';
import { canonicalJson } from '../src/canonical-json.js';
import { publicKeyBytes, verifyEd25519 } from '../src/crypto-node.js';
import { ManifestSchema, TrustedKeys, verifyManifest } from '../src/manifest.js';
import { MESSAGE_SCHEMAS, MESSAGE_TYPES, type MessageType, parseMessage } from '../src/messages.js';

const doc = readFileSync(new URL('../../../docs/ota-protocol.md', import.meta.url), 'utf8');
const ENVELOPE = ['v', 'msgId', 'ts', 'type'];

/** `<!-- example: TYPE -->` followed by a ```json block. */
function examples(): Array<{ type: string; json: string; line: number }> {
  const out: Array<{ type: string; json: string; line: number }> = [];
  const pattern = /<!-- example: ([a-z.]+) -->\n```json\n([\s\S]*?)\n```/g;
  for (const m of doc.matchAll(pattern)) {
    out.push({ type: m[1] as string, json: m[2] as string, line: doc.slice(0, m.index).split('\n').length });
  }
  return out;
}

/** `<!-- fields: NAME... -->` followed by a table whose first column is `field`. */
function fieldTables(): Array<{ names: string[]; fields: string[] }> {
  const out: Array<{ names: string[]; fields: string[] }> = [];
  for (const m of doc.matchAll(/<!-- fields: ([a-z. ]+) -->\n((?:\|.*\n)+)/g)) {
    const rows = (m[2] as string).split('\n').slice(2);
    const fields = rows
      .map((row) => /^\| `([A-Za-z][A-Za-z0-9]*)` \|/.exec(row)?.[1])
      .filter((f): f is string => f !== undefined);
    out.push({ names: (m[1] as string).trim().split(' '), fields });
  }
  return out;
}

const exampleList = examples();
const exampleKey = /```text\n(-----BEGIN PUBLIC KEY-----\n[\s\S]*?-----END PUBLIC KEY-----)\n```/.exec(doc)?.[1];

describe('docs/ota-protocol.md examples', () => {
  test('every ```json block is a marked example, and every message type has one', () => {
    assert.equal(doc.split('```json\n').length - 1, exampleList.length);
    assert.deepEqual([...new Set(exampleList.map((e) => e.type))].sort(), [...MESSAGE_TYPES].sort());
  });

  for (const example of exampleList) {
    test(`line ${example.line}: ${example.type} parses`, () => {
      const result = parseMessage(example.json);
      assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.error));
      assert.equal(result.message.type, example.type);
      assert.deepEqual(result.message, JSON.parse(example.json));
    });
  }

  test('the example manifests verify with the example key, and the doc shows their signed bytes', () => {
    assert.ok(exampleKey, 'the doc shows the example public key');
    const trustedKeys = new TrustedKeys([{ keyId: 'oem-2026', publicKey: publicKeyBytes(exampleKey) }]);
    const signed = exampleList.flatMap((e) => {
      const m = JSON.parse(e.json);
      if (e.type === 'job.notify') return [m.manifest];
      if (e.type === 'sync.result') return m.executions.map((x: { manifest: unknown }) => x.manifest);
      return [];
    });
    assert.ok(signed.length >= 2);
    for (const s of signed) {
      const verdict = verifyManifest(s, {
        trustedKeys,
        verifySignature: verifyEd25519,
        hardwareId: 'tcu-v2',
        installedVersion: '2.0.3',
        now: 1_780_000_000_000,
      });
      assert.ok(verdict.ok, JSON.stringify(verdict));
      assert.ok(doc.includes(`\`\`\`text\n${canonicalJson(s.manifest)}\n\`\`\``), 'signed bytes shown in the doc');
    }
  });
});

describe('docs/ota-protocol.md field tables match the schemas', () => {
  const tables = fieldTables();
  const schemaFields = (name: string): string[] => {
    if (name === 'envelope') return ENVELOPE;
    if (name === 'manifest') return Object.keys(ManifestSchema.properties);
    const schema = MESSAGE_SCHEMAS[name as MessageType] as TObject | undefined;
    assert.ok(schema, `unknown table ${name}`);
    return Object.keys(schema.properties).filter((k) => !ENVELOPE.includes(k));
  };

  test('one table per message type, plus the envelope and the manifest', () => {
    const named = tables.flatMap((t) => t.names).sort();
    assert.deepEqual(named, [...MESSAGE_TYPES, 'envelope', 'manifest'].sort());
  });

  for (const table of tables) {
    for (const name of table.names) {
      test(`${name}: the table lists exactly the schema's fields`, () => {
        assert.deepEqual([...table.fields].sort(), schemaFields(name).sort());
      });
    }
  }
});
