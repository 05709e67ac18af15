// Value parsers shared by the config file, environment variables and flags, so all three accept the same text
// and say the same thing when it is wrong. A parser throws ValueProblem; the caller adds where it came from.

export class ValueProblem extends Error {}

export function parseBoolean(text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new ValueProblem(`expected true or false, got "${text}"`);
}

/** An integer in [min, max]; the message says what kind of integer was expected. */
export function parseInteger(text: string, min: number, max: number): number {
  const what =
    min === 1 && max === Number.MAX_SAFE_INTEGER
      ? 'a positive integer'
      : min === 0 && max === Number.MAX_SAFE_INTEGER
        ? 'a non-negative integer'
        : `an integer from ${min} to ${max}`;
  if (!/^-?\d+$/.test(text)) throw new ValueProblem(`expected ${what}, got "${text}"`);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ValueProblem(`expected ${what}, got ${text}`);
  }
  return value;
}

export function parsePort(text: string): number {
  if (!/^\d+$/.test(text)) throw new ValueProblem(`expected a port number from 0 to 65535, got "${text}"`);
  const port = Number(text);
  if (port > 65535) throw new ValueProblem(`expected a port number from 0 to 65535, got ${text}`);
  return port;
}

export function parseChoice<T extends string>(text: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  throw new ValueProblem(`expected one of ${choices.join(', ')}, got "${text}"`);
}

export function parseNonEmpty(text: string, what: string): string {
  if (text === '') throw new ValueProblem(`expected ${what}`);
  return text;
}

/** `<port> [host]`, as `listener` and `metrics_listener` take it. */
export function parsePortAndHost(text: string): { port: number; host: string | undefined } {
  const words = text.split(/\s+/).filter((w) => w !== '');
  if (words.length === 0 || words.length > 2) {
    throw new ValueProblem(`expected <port> [host], got "${text}"`);
  }
  return { port: parsePort(words[0] as string), host: words[1] };
}

/** Levenshtein distance, for "did you mean" on unknown keys. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

export function suggestion(word: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(word, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}
