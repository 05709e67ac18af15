// `otalink sub -F`: each sequence renders as mosquitto_sub 2.0 renders it (the expected strings were printed by
// mosquitto_sub 2.0.11 for the same messages), and a malformed format is refused when parsed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileFormat, type FormattedMessage } from '../src/commands/sub-format.js';
import { UsageError } from '../src/commands/usage.js';

// A zone with a half-hour offset and no daylight saving time: %z and the local fields are then fixed. Node reads TZ
// again when it changes; this file runs in its own process.
process.env.TZ = 'Asia/Kolkata';

const bytes = (s: string) => new TextEncoder().encode(s);

const withProperties: FormattedMessage = {
  topic: 'f/a',
  payload: bytes('{"a": 1}'),
  qos: 0,
  retain: true,
  properties: {
    contentType: 'text/json',
    correlationData: bytes('cd1'),
    payloadFormatIndicator: 1,
    responseTopic: 'rt/x',
    userProperties: [
      ['k', 'v'],
      ['k2', 'v 2'],
    ],
  },
};
const plain: FormattedMessage = { topic: 'f/b', payload: bytes('he"llo\tx'), qos: 1, retain: false };
const empty: FormattedMessage = { topic: 'f/c', payload: new Uint8Array(0), qos: 2, retain: false };

/** 2026-12-07 00:06:42.603 in Asia/Kolkata (+0530), a Monday. */
const AT = Date.UTC(2026, 11, 6, 18, 36, 42, 603);

function render(format: string, message: FormattedMessage, pretty = false): string {
  return compileFormat(format, pretty)(message, AT).bytes.toString();
}

test('message parameters, with the widths, flags and precision mosquitto takes', () => {
  const format =
    '%t|%p|%x|%X|%l|%q|%r|%m|%C|%D|%F|%P|%R|%S|%A|%10t|%-6l|%06l|%.2t|%5.2t|%10x|%3p|%-10p|%010p|%5X|%4C|%04E|%3R|\\t|\\\\';
  assert.equal(
    render(format, withProperties),
    'f/a|{"a": 1}|7b2261223a20317d|7B2261223A20317D|8|0|1|0|text/json|cd1|1|k:v k2:v 2|rt/x|||       f/a|8     |000008|f/|   f/|  7b226122|{"a|{"a": 1}  |00{"a": 1}| 7B22|text/json|0000|rt/x|\t|\\',
  );
  assert.equal(
    render(format, plain),
    'f/b|he"llo\tx|6865226c6c6f0978|6865226C6C6F0978|8|1|0|0||||||||       f/b|8     |000008|f/|   f/|  6865226c|he"|he"llo\tx  |00he"llo\tx| 6865|    |0000||\t|\\',
  );
  assert.equal(render('[%p][%l][%x][%5p]', empty), '[][0][][     ]');
  assert.equal(
    render('%E %S %%', { ...plain, properties: { messageExpiryInterval: 59, subscriptionIdentifiers: [7, 9] } }),
    '59 7 %',
  );
});

test('escapes and the time fields: %I, %U, @-strftime and @N, on local time', () => {
  assert.equal(render('\\a\\e\\n\\r\\t\\v\\0\\\\', plain), '\x07\x1b\n\r\t\v\0\\');
  assert.equal(render('%I', plain), '2026-12-07T00:06:42+0530');
  assert.equal(render('%4.2I|%U', plain), '  20|1796582202.603000000');
  assert.equal(render('@Y-@m-@dT@H:@M:@S.@N@z @@ @s', plain), '2026-12-07T00:06:42.603000000+0530 @ 1796582202');
  assert.equal(
    render('@a @A @b @B @e @j @y @C @u @w @I @p @k @l @T @F @D @R @%', plain),
    'Mon Monday Dec December  7 341 26 20 1 1 12 AM  0 12 00:06:42 2026-12-07 12/07/26 00:06 %',
  );
});

test('%j: the payload as a string (null when empty), MQTT 5 properties as mosquitto names them', () => {
  assert.equal(
    render('%j', withProperties),
    '{"tst":"2026-12-07T00:06:42.603000Z+0530","topic":"f/a","qos":0,"retain":1,"payloadlen":8,"properties":{"content-type":"text/json","correlation-data":"cd1","payload-format-indicator":1,"response-topic":"rt/x","user-properties":{"k":"v","k2":"v 2"}},"payload":"{\\"a\\": 1}"}',
  );
  assert.equal(
    render('%j', plain),
    '{"tst":"2026-12-07T00:06:42.603000Z+0530","topic":"f/b","qos":1,"retain":0,"payloadlen":8,"payload":"he\\"llo\\tx"}',
  );
  assert.equal(
    render('%j', empty),
    '{"tst":"2026-12-07T00:06:42.603000Z+0530","topic":"f/c","qos":2,"retain":0,"payloadlen":0,"payload":null}',
  );
  // Every subscription identifier is a key of its own, as cJSON repeats it.
  assert.match(
    render('%j', { ...plain, properties: { subscriptionIdentifiers: [3, 4], messageExpiryInterval: 9 } }),
    /"properties":\{"subscription-identifier":3,"subscription-identifier":4,"message-expiry-interval":9\}/,
  );
});

test('%J: the payload as JSON, printed as cJSON prints numbers; not JSON: nothing, and an error to report', () => {
  const json: FormattedMessage = {
    ...plain,
    payload: bytes('{"a":{},"b":[1,{"c":2.5}],"d":[],"e":"xéy","f":1e21,"g":true,"h":null, "i": 1.5e-7, "j": 0.1}'),
  };
  assert.equal(
    render('%J', json),
    '{"tst":"2026-12-07T00:06:42.603000Z+0530","topic":"f/b","qos":1,"retain":0,"payloadlen":94,"payload":{"a":{},"b":[1,{"c":2.5}],"d":[],"e":"xéy","f":1e+21,"g":true,"h":null,"i":1.5e-07,"j":0.1}}',
  );
  const rendered = compileFormat('[%J]')(plain, AT);
  assert.equal(rendered.bytes.toString(), '[]');
  assert.equal(rendered.error, '%J: the payload on topic "f/b" is not valid JSON');
  assert.equal(compileFormat('%j')(plain, AT).error, undefined);
});

test("--pretty: cJSON's layout, tab-indented, arrays on one line, an empty object still broken", () => {
  const json: FormattedMessage = {
    ...plain,
    payload: bytes('{"a":{},"b":[1,{"c":2.5}],"d":[]}'),
    properties: { userProperties: [['k', 'v']] },
  };
  assert.equal(
    render('%J', json, true),
    [
      '{',
      '\t"tst":\t"2026-12-07T00:06:42.603000Z+0530",',
      '\t"topic":\t"f/b",',
      '\t"qos":\t1,',
      '\t"retain":\t0,',
      '\t"payloadlen":\t33,',
      '\t"properties":\t{',
      '\t\t"user-properties":\t{',
      '\t\t\t"k":\t"v"',
      '\t\t}',
      '\t},',
      '\t"payload":\t{',
      '\t\t"a":\t{',
      '\t\t},',
      '\t\t"b":\t[1, {',
      '\t\t\t\t"c":\t2.5',
      '\t\t\t}],',
      '\t\t"d":\t[]',
      '\t}',
      '}',
    ].join('\n'),
  );
});

test('a malformed format is refused when parsed, naming the sequence', () => {
  const cases: Array<[string, string]> = [
    ['%Z', 'invalid format specifier "%Z"'],
    ['%0-3l', 'invalid format specifier "%0-"'],
    ['50%', 'incomplete format specifier at the end'],
    ['%10', 'incomplete format specifier at the end'],
    ['@', 'incomplete time field at the end'],
    ['\\', 'incomplete escape at the end'],
    ['\\q', 'invalid escape "\\q"'],
  ];
  for (const [format, why] of cases) {
    assert.throws(
      () => compileFormat(format),
      (e: unknown) => e instanceof UsageError && e.message === `-F "${format}": ${why}`,
      format,
    );
  }
  assert.throws(() => compileFormat('@q'), /-F "@q": unsupported time field "@q" \(supported: @a @A/);
});
