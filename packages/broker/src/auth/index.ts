// Authentication (password file) and authorization (ACL file) hooks for BrokerOptions.
export { type AclAccess, type AclRule, type AclRules, createAclAuthorizer, parseAcl, readAclFile } from './acl.js';
export { AuthFileError, type AuthFileErrorCode } from './errors.js';
export {
  createPasswordAuthenticator,
  defaultScryptParams,
  formatPasswordFile,
  hashPassword,
  type PasswordAuthenticatorOptions,
  type PasswordHash,
  parsePasswordFile,
  parsePasswordHash,
  readPasswordFile,
  type ScryptParams,
  usernameProblem,
  verifyPassword,
  writeFileAtomic,
} from './password-file.js';
