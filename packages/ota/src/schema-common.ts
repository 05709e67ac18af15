// Building blocks shared by the message and manifest schemas, and one way to report the first schema error.
import { type TSchema, Type } from '@sinclair/typebox';
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler';

/** Identifiers (job, campaign, artifact, key, hardware): ASCII letters, digits and `._:@-`, 1..128 characters. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$';
export const Id = Type.String({ pattern: ID_PATTERN });

/** RFC 9562 textual UUID, any version, lower or upper case. */
export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
export const Uuid = Type.String({ pattern: UUID_PATTERN });

/** Milliseconds since the Unix epoch. */
export const EpochMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A duration in milliseconds. */
export const DurationMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A byte count. */
export const ByteCount = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

export interface SchemaProblem {
  /** JSON Pointer of the offending value (`/manifest/manifest/version`); '' for the whole value. */
  path: string;
  text: string;
}

/** Compiles a schema once; TypeBox's compiled checkers are an order of magnitude faster than Value.Check. */
export function compile<T extends TSchema>(schema: T): TypeCheck<T> {
  return TypeCompiler.Compile(schema);
}

/** The first schema error TypeBox reports, or undefined when the value matches. */
export function firstProblem<T extends TSchema>(check: TypeCheck<T>, value: unknown): SchemaProblem | undefined {
  const first = check.Errors(value).First();
  if (first === undefined) return undefined;
  return { path: first.path, text: describe(first.schema, first.message) };
}

/** TypeBox says "Expected union value" for an enumeration; naming the allowed values helps whoever reads the log. */
function describe(schema: TSchema, message: string): string {
  const options: unknown = schema.anyOf;
  if (!Array.isArray(options) || options.length === 0) return message;
  const values: string[] = [];
  for (const option of options as Array<{ const?: unknown }>) {
    if (typeof option !== 'object' || option === null || option.const === undefined) return message;
    values.push(JSON.stringify(option.const));
  }
  return `expected one of ${values.join(', ')}`;
}
