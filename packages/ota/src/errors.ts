// The OTA layer's stable error codes. Refusals and invalid input are returned as values (never thrown) because
// they come from the network or from an artifact server; OtaError is thrown only for programming errors, such as
// building a topic from an invalid VIN or encoding a message that does not match its schema.

export type OtaErrorCode =
  // Messages (parseMessage / encodeMessage)
  | 'OTA_ERR_INVALID_MESSAGE'
  | 'OTA_ERR_UNSUPPORTED_VERSION'
  | 'OTA_ERR_UNKNOWN_TYPE'
  | 'OTA_ERR_UNEXPECTED_TYPE'
  | 'OTA_ERR_MESSAGE_TOO_LARGE'
  // Topics
  | 'OTA_ERR_INVALID_VIN'
  | 'OTA_ERR_INVALID_TOPIC'
  // Manifest trust (verifyManifest and the download checks)
  | 'OTA_ERR_INVALID_MANIFEST'
  | 'OTA_ERR_BAD_SIGNATURE'
  | 'OTA_ERR_UNKNOWN_KEY'
  | 'OTA_ERR_HARDWARE_MISMATCH'
  | 'OTA_ERR_NOT_NEWER'
  | 'OTA_ERR_INVALID_VERSION'
  | 'OTA_ERR_MANIFEST_EXPIRED'
  | 'OTA_ERR_MANIFEST_NOT_YET_VALID'
  | 'OTA_ERR_TOO_LARGE'
  | 'OTA_ERR_SIZE_MISMATCH'
  | 'OTA_ERR_HASH_MISMATCH'
  // Canonical JSON and keys
  | 'OTA_ERR_NOT_CANONICALIZABLE'
  | 'OTA_ERR_INVALID_KEY'
  // Executions
  | 'OTA_ERR_TIMED_OUT'
  /** Reported by a vehicle that could not start before job.notify's deadlines.startBy. */
  | 'OTA_ERR_DEADLINE'
  // Rollout policy
  | 'OTA_ERR_INVALID_POLICY';

export class OtaError extends Error {
  readonly code: OtaErrorCode;

  constructor(code: OtaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OtaError';
    this.code = code;
  }
}
