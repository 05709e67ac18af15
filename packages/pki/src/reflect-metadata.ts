// @peculiar/x509 resolves its services through tsyringe, which refuses to load unless the Reflect metadata API
// exists. The package is not a dependency here, so this installs the small part tsyringe uses (define, get, get
// own, has, and the `metadata` decorator factory TypeScript emits) when no polyfill is present. It must be imported
// before @peculiar/x509.

type MetadataKey = unknown;
type PropertyKeyOrNone = string | symbol | undefined;

interface ReflectMetadataApi {
  defineMetadata(key: MetadataKey, value: unknown, target: object, property?: PropertyKeyOrNone): void;
  getOwnMetadata(key: MetadataKey, target: object, property?: PropertyKeyOrNone): unknown;
  getMetadata(key: MetadataKey, target: object, property?: PropertyKeyOrNone): unknown;
  hasOwnMetadata(key: MetadataKey, target: object, property?: PropertyKeyOrNone): boolean;
  hasMetadata(key: MetadataKey, target: object, property?: PropertyKeyOrNone): boolean;
  metadata(key: MetadataKey, value: unknown): (target: object, property?: PropertyKeyOrNone) => void;
}

const store = new WeakMap<object, Map<PropertyKeyOrNone, Map<MetadataKey, unknown>>>();

function table(target: object, property: PropertyKeyOrNone, create: boolean): Map<MetadataKey, unknown> | undefined {
  let byProperty = store.get(target);
  if (byProperty === undefined) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let entries = byProperty.get(property);
  if (entries === undefined && create) {
    entries = new Map();
    byProperty.set(property, entries);
  }
  return entries;
}

const api: ReflectMetadataApi = {
  defineMetadata(key, value, target, property) {
    table(target, property, true)?.set(key, value);
  },
  getOwnMetadata(key, target, property) {
    return table(target, property, false)?.get(key);
  },
  hasOwnMetadata(key, target, property) {
    return table(target, property, false)?.has(key) ?? false;
  },
  getMetadata(key, target, property) {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const entries = table(t, property, false);
      if (entries?.has(key)) return entries.get(key);
    }
    return undefined;
  },
  hasMetadata(key, target, property) {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      if (table(t, property, false)?.has(key)) return true;
    }
    return false;
  },
  metadata(key, value) {
    return (target, property) => api.defineMetadata(key, value, target, property);
  },
};

const reflect = Reflect as unknown as Partial<ReflectMetadataApi>;
if (typeof reflect.getMetadata !== 'function') Object.assign(Reflect, api);
