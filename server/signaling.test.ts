import t from 'tap';
import { EvaError } from './errors.js';
import { MAX_FRAME_BYTES, parseClientMessage } from './signaling.js';

const enc = (s: string) => new TextEncoder().encode(s).buffer as ArrayBuffer;
function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof EvaError ? err.code : `not an EvaError: ${String(err)}`;
  }
  return 'no error';
}

t.test('well-formed messages parse to typed values', async (t) => {
  t.same(parseClientMessage(enc('{"type":"offer","sdp":"v=0..."}')), { type: 'offer', sdp: 'v=0...', config: {} });
  t.same(parseClientMessage('{"type":"offer","sdp":"v=0","config":{"voice":"en-us","system":"Be brief","language":"en"}}'), {
    type: 'offer',
    sdp: 'v=0',
    config: { voice: 'en-us', system: 'Be brief', language: 'en' },
  });
  t.same(parseClientMessage('{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}'), {
    type: 'candidate',
    candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 },
  });
  t.same(parseClientMessage('{"type":"text","text":"  hello  "}'), { type: 'text', text: 'hello' });
  t.same(parseClientMessage('{"type":"hangup"}'), { type: 'hangup' });
});

t.test('malformed frames are bad_message with a reason', async (t) => {
  const cases: [string, string][] = [
    ['not json', 'bad_message'],
    ['[1,2]', 'bad_message'],
    ['null', 'bad_message'],
    ['{"sdp":"x"}', 'bad_message'],
    ['{"type":5}', 'bad_message'],
    ['{"type":"offer"}', 'bad_message'],
    ['{"type":"offer","sdp":""}', 'bad_message'],
    ['{"type":"offer","sdp":"v=0","config":[]}', 'bad_message'],
    ['{"type":"offer","sdp":"v=0","config":{"voice":3}}', 'bad_message'],
    ['{"type":"candidate"}', 'bad_message'],
    ['{"type":"candidate","candidate":{"candidate":7}}', 'bad_message'],
    ['{"type":"text","text":"   "}', 'bad_message'],
    ['{"type":"text"}', 'bad_message'],
    ['{"type":"dance"}', 'unknown_type'],
  ];
  for (const [frame, want] of cases) t.equal(code(() => parseClientMessage(frame)), want, frame);
  t.equal(code(() => parseClientMessage(new Uint8Array([0xff, 0xfe, 0x7b]).buffer as ArrayBuffer)), 'bad_message', 'invalid UTF-8');
  t.equal(code(() => parseClientMessage(enc('{"type":"hangup"}'), true)), 'bad_message', 'binary frames are refused');
});

t.test('oversized frames and fields are too_large', async (t) => {
  t.equal(code(() => parseClientMessage('{"type":"text","text":"' + 'a'.repeat(MAX_FRAME_BYTES) + '"}')), 'too_large');
  t.equal(code(() => parseClientMessage('{"type":"text","text":"' + 'a'.repeat(5000) + '"}')), 'too_large');
  t.equal(code(() => parseClientMessage('{"type":"offer","sdp":"v=0","config":{"system":"' + 'b'.repeat(5000) + '"}}')), 'too_large');
});

t.test('an unknown type names the expected ones', async (t) => {
  t.throws(() => parseClientMessage('{"type":"chat"}'), /expected offer, candidate, text or hangup/);
});
