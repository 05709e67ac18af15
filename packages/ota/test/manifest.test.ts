import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canonicalJson } from '../src/canonical-json.js';
import {
  createSha256,
  generateEd25519KeyPair,
  keyIdOf,
  publicKeyBytes,
  sha256Hex,
  signManifest,
  verifyEd25519,
} from '../src/crypto-node.js';
import { OtaError } from '../src/errors.js';
import {
  checkArtifact,
  checkDeclaredSize,
  type Manifest,
  type SignedManifest,
  TrustedKeys,
  type VerifyManifestOptions,
  verifyManifest,
} from '../src/manifest.js';
import { compareSemver, parseSemver } from '../src/semver.js';

const NOW = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;
const ARTIFACT = new TextEncoder().encode('firmware image bytes');

const current = generateEd25519KeyPair();
const next = generateEd25519KeyPair();
const stranger = generateEd25519KeyPair();

function manifest(overrides: Partial<Manifest> = {}): Manifest {
  return {
    artifactId: 'art-1',
    name: 'tcu-firmware',
    version: '2.1.0',
    hardwareIds: ['tcu-v2', 'tcu-v2b'],
    size: ARTIFACT.length,
    sha256: sha256Hex(ARTIFACT),
    url: 'https://artifacts.example/art-1',
    issuedAt: NOW - DAY,
    expiresAt: NOW + 30 * DAY,
    keyId: 'k-2026',
    ...overrides,
  };
}

function options(overrides: Partial<VerifyManifestOptions> = {}): VerifyManifestOptions {
  return {
    trustedKeys: new TrustedKeys([{ keyId: 'k-2026', publicKey: current.publicKey }]),
    verifySignature: verifyEd25519,
    hardwareId: 'tcu-v2',
    installedVersion: '2.0.3',
    now: NOW,
    ...overrides,
  };
}

function refusal(signed: unknown, opts: VerifyManifestOptions): string {
  const verdict = verifyManifest(signed, opts);
  return verdict.ok ? 'ok' : verdict.error.code;
}

describe('verifyManifest', () => {
  test('accepts a manifest signed by a trusted key (PEM or raw private key)', () => {
    for (const key of [current.privateKeyPem, current.privateKey]) {
      const signed = signManifest(manifest(), key);
      const verdict = verifyManifest(signed, options());
      assert.ok(verdict.ok, JSON.stringify(verdict));
      assert.equal(verdict.manifest.version, '2.1.0');
    }
  });

  test('nothing installed yet: any version', () => {
    assert.equal(
      refusal(
        signManifest(manifest({ version: '0.0.1' }), current.privateKey),
        options({ installedVersion: undefined }),
      ),
      'ok',
    );
  });

  const cases: Array<{ name: string; signed: () => unknown; opts?: Partial<VerifyManifestOptions>; code: string }> = [
    {
      name: 'signed by an untrusted key under a trusted id',
      signed: () => signManifest(manifest(), stranger.privateKey),
      code: 'OTA_ERR_BAD_SIGNATURE',
    },
    {
      name: 'unknown key id',
      signed: () => signManifest(manifest({ keyId: 'k-other' }), current.privateKey),
      code: 'OTA_ERR_UNKNOWN_KEY',
    },
    {
      name: 'other hardware',
      signed: () => signManifest(manifest(), current.privateKey),
      opts: { hardwareId: 'tcu-v1' },
      code: 'OTA_ERR_HARDWARE_MISMATCH',
    },
    {
      name: 'same version (replay)',
      signed: () => signManifest(manifest({ version: '2.0.3' }), current.privateKey),
      code: 'OTA_ERR_NOT_NEWER',
    },
    {
      name: 'older version (rollback attack)',
      signed: () => signManifest(manifest({ version: '1.9.9' }), current.privateKey),
      code: 'OTA_ERR_NOT_NEWER',
    },
    {
      name: 'pre-release of the installed version',
      signed: () => signManifest(manifest({ version: '2.0.3-rc.9' }), current.privateKey),
      code: 'OTA_ERR_NOT_NEWER',
    },
    {
      name: 'only build metadata differs',
      signed: () => signManifest(manifest({ version: '2.0.3+build.7' }), current.privateKey),
      code: 'OTA_ERR_NOT_NEWER',
    },
    {
      name: 'allowDowngrade false is no permission',
      signed: () => signManifest(manifest({ version: '1.0.0', allowDowngrade: false }), current.privateKey),
      code: 'OTA_ERR_NOT_NEWER',
    },
    {
      name: 'expired (freeze attack)',
      signed: () => signManifest(manifest(), current.privateKey),
      opts: { now: NOW + 30 * DAY },
      code: 'OTA_ERR_MANIFEST_EXPIRED',
    },
    {
      name: 'issued in the future beyond the skew',
      signed: () => signManifest(manifest({ issuedAt: NOW + 10 * 60_000 }), current.privateKey),
      code: 'OTA_ERR_MANIFEST_NOT_YET_VALID',
    },
    {
      name: 'expiresAt before issuedAt',
      signed: () => signManifest(manifest({ expiresAt: NOW - 2 * DAY }), current.privateKey),
      code: 'OTA_ERR_INVALID_MANIFEST',
    },
    {
      name: 'installed version is not semver',
      signed: () => signManifest(manifest(), current.privateKey),
      opts: { installedVersion: 'v2-final' },
      code: 'OTA_ERR_INVALID_VERSION',
    },
    { name: 'not an object', signed: () => 'manifest', code: 'OTA_ERR_INVALID_MANIFEST' },
    { name: 'signature missing', signed: () => ({ manifest: manifest() }), code: 'OTA_ERR_INVALID_MANIFEST' },
    {
      name: 'signature not base64 of 64 bytes',
      signed: () => ({ manifest: manifest(), signature: 'abc' }),
      code: 'OTA_ERR_INVALID_MANIFEST',
    },
    {
      name: 'version not semver',
      signed: () => signManifest({ ...manifest(), version: '2.1' }, current.privateKey),
      code: 'OTA_ERR_INVALID_MANIFEST',
    },
    {
      name: 'sha256 upper case',
      signed: () => signManifest({ ...manifest(), sha256: 'A'.repeat(64) }, current.privateKey),
      code: 'OTA_ERR_INVALID_MANIFEST',
    },
    {
      name: 'no hardware ids',
      signed: () => signManifest({ ...manifest(), hardwareIds: [] }, current.privateKey),
      code: 'OTA_ERR_INVALID_MANIFEST',
    },
  ];
  for (const c of cases) {
    test(`refuses: ${c.name} → ${c.code}`, () => {
      assert.equal(refusal(c.signed(), options(c.opts)), c.code);
    });
  }

  test('the invalid-manifest refusal names the field', () => {
    const verdict = verifyManifest({ manifest: { ...manifest(), size: -1 }, signature: 'x' }, options());
    assert.ok(!verdict.ok);
    assert.equal(verdict.error.code, 'OTA_ERR_INVALID_MANIFEST');
    assert.equal(verdict.error.path, '/manifest/size');
  });

  test('allowDowngrade in the signed manifest permits an older or equal version', () => {
    for (const version of ['1.0.0', '2.0.3']) {
      assert.equal(
        refusal(signManifest(manifest({ version, allowDowngrade: true }), current.privateKey), options()),
        'ok',
      );
    }
    // ...also over an installed version that is not semver
    assert.equal(
      refusal(
        signManifest(manifest({ allowDowngrade: true }), current.privateKey),
        options({ installedVersion: 'weird' }),
      ),
      'ok',
    );
  });

  test('allowDowngrade added after signing does not help', () => {
    const signed = signManifest(manifest({ version: '1.0.0' }), current.privateKey);
    const tampered = { ...signed, manifest: { ...signed.manifest, allowDowngrade: true } };
    assert.equal(refusal(tampered, options()), 'OTA_ERR_BAD_SIGNATURE');
  });

  const tamper: Array<[string, (m: Manifest) => Manifest]> = [
    ['version', (m) => ({ ...m, version: '9.0.0' })],
    ['sha256', (m) => ({ ...m, sha256: sha256Hex('evil') })],
    ['url', (m) => ({ ...m, url: 'https://evil.example/x' })],
    ['size', (m) => ({ ...m, size: m.size + 1 })],
    ['expiresAt', (m) => ({ ...m, expiresAt: m.expiresAt + DAY })],
    ['hardwareIds', (m) => ({ ...m, hardwareIds: [...m.hardwareIds, 'tcu-v3'] })],
    ['an extra field', (m) => ({ ...m, note: 'added' }) as Manifest],
  ];
  for (const [field, change] of tamper) {
    test(`a tampered ${field} breaks the signature`, () => {
      const signed = signManifest(manifest(), current.privateKey);
      assert.equal(refusal({ ...signed, manifest: change(signed.manifest) }, options()), 'OTA_ERR_BAD_SIGNATURE');
    });
  }

  test('a forward-compatible extra field that was signed verifies', () => {
    const signed = signManifest({ ...manifest(), deltaFrom: '2.0.3' } as Manifest, current.privateKey);
    const received = JSON.parse(JSON.stringify(signed)) as SignedManifest;
    assert.equal(refusal(received, options()), 'ok');
  });

  test('key order on the wire does not matter (canonical JSON)', () => {
    const signed = signManifest(manifest(), current.privateKey);
    const reversed = Object.fromEntries(Object.entries(signed.manifest).reverse()) as Manifest;
    assert.equal(refusal({ signature: signed.signature, manifest: reversed }, options()), 'ok');
  });

  test('a manifest with an uncanonicalisable extra field is a bad signature, not a crash', () => {
    const signed = signManifest(manifest(), current.privateKey);
    assert.equal(
      refusal({ ...signed, manifest: { ...signed.manifest, ratio: 0.5 } }, options()),
      'OTA_ERR_BAD_SIGNATURE',
    );
  });

  test('a throwing verifier counts as a bad signature', () => {
    const signed = signManifest(manifest(), current.privateKey);
    const throwing = () => {
      throw new Error('boom');
    };
    assert.equal(refusal(signed, options({ verifySignature: throwing })), 'OTA_ERR_BAD_SIGNATURE');
  });

  test('rotation: two trusted keys at once, then the old one removed', () => {
    const trustedKeys = new TrustedKeys([
      { keyId: 'k-2026', publicKey: current.publicKey },
      { keyId: 'k-2027', publicKey: next.publicKey },
    ]);
    const old = signManifest(manifest(), current.privateKey);
    const rotated = signManifest(manifest({ keyId: 'k-2027' }), next.privateKey);
    assert.equal(refusal(old, options({ trustedKeys })), 'ok');
    assert.equal(refusal(rotated, options({ trustedKeys })), 'ok');
    // Signed by the new key but claiming the old id: the id selects the key, so it fails.
    assert.equal(refusal(signManifest(manifest(), next.privateKey), options({ trustedKeys })), 'OTA_ERR_BAD_SIGNATURE');
    trustedKeys.remove('k-2026');
    assert.deepEqual(trustedKeys.keyIds(), ['k-2027']);
    assert.equal(refusal(old, options({ trustedKeys })), 'OTA_ERR_UNKNOWN_KEY');
    assert.equal(refusal(rotated, options({ trustedKeys })), 'ok');
  });

  test('TrustedKeys refuses malformed ids and keys', () => {
    const keys = new TrustedKeys();
    assert.throws(
      () => keys.add('bad id', current.publicKey),
      (e: unknown) => e instanceof OtaError && e.code === 'OTA_ERR_INVALID_KEY',
    );
    assert.throws(() => keys.add('k', new Uint8Array(31)), { code: 'OTA_ERR_INVALID_KEY' });
    assert.equal(keys.size, 0);
  });
});

describe('keys (crypto-node)', () => {
  test('PEM and raw public keys are the same key; key ids are stable', () => {
    assert.deepEqual(publicKeyBytes(current.publicKeyPem), current.publicKey);
    assert.deepEqual(publicKeyBytes(current.publicKey), current.publicKey);
    assert.equal(keyIdOf(current.publicKeyPem), keyIdOf(current.publicKey));
    assert.match(keyIdOf(current.publicKey), /^ed25519:[0-9a-f]{16}$/);
    assert.notEqual(keyIdOf(current.publicKey), keyIdOf(next.publicKey));
  });

  test('invalid keys throw OTA_ERR_INVALID_KEY', () => {
    assert.throws(() => publicKeyBytes('not a pem'), { code: 'OTA_ERR_INVALID_KEY' });
    assert.throws(() => publicKeyBytes(new Uint8Array(10)), { code: 'OTA_ERR_INVALID_KEY' });
    assert.throws(() => signManifest(manifest(), new Uint8Array(5)), { code: 'OTA_ERR_INVALID_KEY' });
  });

  test('verifyEd25519 never throws', () => {
    const msg = new TextEncoder().encode('x');
    assert.equal(verifyEd25519(msg, '!!!', current.publicKey), false);
    assert.equal(verifyEd25519(msg, `${'A'.repeat(86)}==`, new Uint8Array(3)), false);
  });
});

describe('download checks', () => {
  const m = manifest();
  test('checkDeclaredSize: up to the declared size, not one byte more', () => {
    assert.deepEqual(checkDeclaredSize(0, m), { ok: true });
    assert.deepEqual(checkDeclaredSize(m.size, m), { ok: true });
    const over = checkDeclaredSize(m.size + 1, m);
    assert.ok(!over.ok);
    assert.equal(over.error.code, 'OTA_ERR_TOO_LARGE');
  });

  test('checkArtifact with an incremental hash', () => {
    const hasher = createSha256();
    hasher.update(ARTIFACT.subarray(0, 5));
    hasher.update(ARTIFACT.subarray(5));
    assert.deepEqual(checkArtifact({ size: ARTIFACT.length, sha256: hasher.digestHex() }, m), { ok: true });
    assert.deepEqual(checkArtifact({ size: ARTIFACT.length, sha256: m.sha256.toUpperCase() }, m), { ok: true });
  });

  const refusals: Array<[string, { size: number; sha256: string }, string]> = [
    [
      'one byte flipped',
      { size: ARTIFACT.length, sha256: sha256Hex(Uint8Array.from(ARTIFACT, (b, i) => (i === 0 ? b ^ 1 : b))) },
      'OTA_ERR_HASH_MISMATCH',
    ],
    ['truncated', { size: ARTIFACT.length - 1, sha256: sha256Hex(ARTIFACT.subarray(1)) }, 'OTA_ERR_SIZE_MISMATCH'],
    ['longer', { size: ARTIFACT.length + 1, sha256: m.sha256 }, 'OTA_ERR_TOO_LARGE'],
  ];
  for (const [name, actual, code] of refusals) {
    test(`checkArtifact refuses ${name} → ${code}`, () => {
      const result = checkArtifact(actual, m);
      assert.ok(!result.ok);
      assert.equal(result.error.code, code);
    });
  }
});

describe('canonical JSON', () => {
  const table: Array<[unknown, string]> = [
    [{ b: 1, a: 2 }, '{"a":2,"b":1}'],
    [{ a: { d: [3, { z: true, y: null }], c: 'x' } }, '{"a":{"c":"x","d":[3,{"y":null,"z":true}]}}'],
    [{ a: undefined, b: 1 }, '{"b":1}'],
    [[], '[]'],
    [{}, '{}'],
    ['é\n"\\\u0001', '"é\\n\\"\\\\\\u0001"'],
    ['😀', '"😀"'],
    [-12, '-12'],
    [0, '0'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    // RFC 8785 sorts by UTF-16 code units: '\u00e9' (0xE9) < '\ud83d' (high surrogate of 😀) < '\uff61'
    [{ '\uff61': 1, '😀': 2, é: 3, Z: 4, a: 5 }, '{"Z":4,"a":5,"é":3,"😀":2,"｡":1}'],
  ];
  for (const [value, expected] of table) {
    test(`${expected}`, () => {
      assert.equal(canonicalJson(value), expected);
    });
  }

  test('stable: insertion order, JSON round trip and repeated calls give the same bytes', () => {
    const m = manifest({ allowDowngrade: true });
    const shuffled = Object.fromEntries(Object.entries(m).sort(() => -1));
    const once = canonicalJson(m);
    assert.equal(canonicalJson(shuffled), once);
    assert.equal(canonicalJson(JSON.parse(JSON.stringify(m))), once);
    assert.equal(canonicalJson(JSON.parse(once)), once);
    assert.ok(!/\s/.test(once.replace(/"[^"]*"/g, '')), 'no whitespace outside strings');
  });

  const refused: Array<[string, unknown]> = [
    ['a fraction', { a: 0.5 }],
    ['NaN', [Number.NaN]],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-0', -0],
    ['an unsafe integer', 2 ** 53],
    ['a lone surrogate', '\ud800'],
    ['a lone surrogate in a key', { '\udc00': 1 }],
    ['undefined in an array', [undefined]],
    ['a bigint', 1n],
    ['a Date', new Date(0)],
    ['a function', () => 1],
  ];
  for (const [name, value] of refused) {
    test(`refuses ${name}`, () => {
      assert.throws(() => canonicalJson(value), { code: 'OTA_ERR_NOT_CANONICALIZABLE' });
    });
  }
});

describe('semantic versions', () => {
  // Each is lower than the next (semver.org section 11 example, plus numeric identifiers beyond 2^53).
  const ordered = [
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-alpha.beta',
    '1.0.0-beta',
    '1.0.0-beta.2',
    '1.0.0-beta.11',
    '1.0.0-rc.1',
    '1.0.0',
    '1.0.1',
    '1.2.0',
    '1.10.0',
    '2.0.0-99999999999999999999',
    '2.0.0-100000000000000000000',
    '2.0.0',
    '10.0.0',
  ];
  test('precedence follows semver.org', () => {
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        const a = parseSemver(ordered[i] as string);
        const b = parseSemver(ordered[j] as string);
        assert.ok(a && b);
        assert.equal(Math.sign(compareSemver(a, b)), Math.sign(i - j), `${ordered[i]} vs ${ordered[j]}`);
      }
    }
  });

  test('build metadata is ignored', () => {
    const a = parseSemver('1.0.0+a');
    const b = parseSemver('1.0.0+b.2');
    assert.ok(a && b);
    assert.equal(compareSemver(a, b), 0);
    assert.deepEqual(b.build, ['b', '2']);
  });

  for (const text of [
    '1',
    '1.0',
    'v1.0.0',
    '01.0.0',
    '1.0.0-01',
    '1.0.0-',
    '1.0.0+',
    ' 1.0.0',
    '1.0.0 ',
    '99999999999999999999.0.0',
  ]) {
    test(`not a semantic version: ${JSON.stringify(text)}`, () => {
      assert.equal(parseSemver(text), undefined);
    });
  }
});
