// @otalink/backend: the OEM backend's engine (store, artifacts, campaigns, MQTT bridge) and its service contract.
export * from './api.js';
export {
  loadOrCreateUrlSecret,
  type SignedUrlVerdict,
  signArtifactPath,
  signArtifactUrl,
  verifyArtifactSignature,
} from './artifacts/signed-url.js';
