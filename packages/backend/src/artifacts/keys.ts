// Manifest signing keys: Ed25519, private keys as PKCS#8 PEM files (mode 0600) in `<dataDir>/keys/`, metadata in
// the store. The first start generates one; rotateKey() adds a new active key while the older ones stay listed as
// trusted, so the fleet can trust both before manifests switch (rotation without a flag day).
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest, SignedManifest } from '@otalink/ota';
import { generateEd25519KeyPair, keyIdOf, signManifest } from '@otalink/ota/node';
import { BackendError, type SigningKey } from '../api.js';
import type { BackendStore, SigningKeyRecord } from '../store/types.js';

export class Keyring {
  private records: SigningKeyRecord[] = [];
  private activePrivateKey: string | undefined;

  private constructor(
    private readonly dir: string,
    private readonly store: BackendStore,
    private readonly now: () => number,
  ) {}

  static async open(dataDir: string, store: BackendStore, now: () => number): Promise<Keyring> {
    const ring = new Keyring(join(dataDir, 'keys'), store, now);
    try {
      await mkdir(ring.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new BackendError('OTA_ERR_STORE', `cannot create ${ring.dir}: ${(e as Error).message}`, { cause: e });
    }
    ring.records = await store.listSigningKeys();
    if (ring.records.length === 0) await ring.rotate();
    else ring.loadActive();
    return ring;
  }

  private fileOf(keyId: string): string {
    return join(this.dir, `${keyId.replace(/[^A-Za-z0-9._-]/g, '_')}.pem`);
  }

  private loadActive(): void {
    const active = this.active();
    try {
      this.activePrivateKey = readFileSync(this.fileOf(active.keyId), 'utf8');
    } catch (e) {
      throw new BackendError(
        'OTA_ERR_STORE',
        `the private key of ${active.keyId} is missing from ${this.fileOf(active.keyId)}: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }

  private active(): SigningKeyRecord {
    const active = this.records.find((k) => k.active);
    if (active === undefined) throw new BackendError('OTA_ERR_STORE', 'no active signing key');
    return active;
  }

  get activeKeyId(): string {
    return this.active().keyId;
  }

  list(): SigningKey[] {
    return this.records.map((k) => ({ ...k }));
  }

  /** A new active key; the file is written before the store commit so a listed key always has its private half. */
  async rotate(): Promise<SigningKey> {
    const pair = generateEd25519KeyPair();
    const keyId = keyIdOf(pair.publicKey);
    try {
      writeFileSync(this.fileOf(keyId), pair.privateKeyPem, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      throw new BackendError('OTA_ERR_STORE', `cannot write ${this.fileOf(keyId)}: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const record: SigningKeyRecord = {
      keyId,
      publicKey: Buffer.from(pair.publicKey).toString('base64'),
      publicKeyPem: pair.publicKeyPem,
      createdAt: this.now(),
      active: true,
    };
    const retired = this.records.filter((k) => k.active).map((k) => ({ ...k, active: false }));
    await this.store.commit({ signingKeys: [...retired, record] });
    this.records = [...this.records.map((k) => ({ ...k, active: false })), record];
    this.activePrivateKey = pair.privateKeyPem;
    return { ...record };
  }

  /** Signs with the active key; `manifest.keyId` is set to it. */
  sign(manifest: Omit<Manifest, 'keyId'>): SignedManifest {
    const keyId = this.activeKeyId;
    if (this.activePrivateKey === undefined) throw new BackendError('OTA_ERR_STORE', 'no active private key');
    return signManifest({ ...manifest, keyId } as Manifest, this.activePrivateKey);
  }
}
