// Bad input over the real WebSocket: each gets {type:"error", code, message}, and the server keeps serving.
import t from 'tap';
import WebSocket from 'ws';
import { ProbeCall } from '../bench/probe-client.js';
import { Peer } from '../media/peer.js';
import { startEva } from './helpers/eva.js';

interface Msg {
  type: string;
  code?: string;
  message?: string;
}

async function socket(url: string) {
  const ws = new WebSocket(url);
  const inbox: Msg[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (d) => {
    inbox.push(JSON.parse(String(d)) as Msg);
    waiters.splice(0).forEach((w) => w());
  });
  await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
  return {
    ws,
    async next(timeoutMs = 5000): Promise<Msg> {
      const end = Date.now() + timeoutMs;
      while (inbox.length === 0) {
        if (Date.now() > end) throw new Error('no reply');
        await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 50)));
      }
      return inbox.shift()!;
    },
  };
}

t.test('malformed, unknown, out-of-order and oversized messages get error replies on a live socket', async (t) => {
  const eva = await startEva(t);
  const s = await socket(eva.wsUrl);
  t.teardown(() => s.ws.close());
  const cases: [string | Buffer, string][] = [
    ['{not json', 'bad_message'],
    ['{"type":"dance"}', 'unknown_type'],
    ['{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}', 'no_call'],
    ['{"type":"text","text":"hi"}', 'no_call'],
    ['{"type":"hangup"}', 'no_call'],
    ['{"type":"offer","sdp":"hello"}', 'bad_sdp'],
    ['{"type":"offer","sdp":"v=0\\r\\no=- 1 1 IN IP4 0.0.0.0\\r\\ns=-\\r\\nt=0 0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\n"}', 'no_audio'],
    ['x'.repeat(200 * 1024), 'too_large'],
    [Buffer.from([1, 2, 3]), 'bad_message'],
  ];
  for (const [frame, want] of cases) {
    s.ws.send(frame);
    const reply = await s.next();
    t.equal(reply.type, 'error', `reply to ${String(frame).slice(0, 40)}`);
    t.equal(reply.code, want, reply.message ?? '');
    t.ok(reply.message && reply.message.length > 5, 'with a message');
  }
  t.equal(s.ws.readyState, WebSocket.OPEN, 'the socket is still open');
  t.equal(eva.server.calls.size, 0, 'no call leaked from a refused offer');
});

t.test('a second offer on a socket with a call is refused and the call goes on', async (t) => {
  const eva = await startEva(t);
  const call = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => call.close());
  call.send({ type: 'offer', sdp: 'v=0\r\n' });
  const err = await call.waitFor((m) => m.type === 'error');
  t.same(err.type === 'error' && err.code, 'already_in_call');
  t.equal(eva.server.calls.size, 1);
  call.send({ type: 'text', text: 'still there?' });
  const reply = await call.waitFor((m) => m.type === 'reply_end');
  t.ok(reply.type === 'reply_end' && reply.text.length > 0, 'the call still answers');
});

t.test('other calls keep working while one socket sends garbage', async (t) => {
  const eva = await startEva(t);
  const good = await ProbeCall.connect(eva.wsUrl);
  t.teardown(() => good.close());
  const bad = await socket(eva.wsUrl);
  t.teardown(() => bad.ws.close());
  for (let i = 0; i < 200; i++) bad.ws.send(i % 2 ? '{"type":"nope"}' : '][');
  good.send({ type: 'text', text: 'ping' });
  const r = await good.waitFor((m) => m.type === 'reply_end');
  t.equal(r.type, 'reply_end');
  t.equal(eva.server.calls.size, 1);
});

t.test('unknown HTTP routes are a JSON 404 and /health answers', async (t) => {
  const eva = await startEva(t);
  const r = await fetch(`${eva.httpUrl}/nope`);
  t.equal(r.status, 404);
  t.match(await r.json(), { error: { code: 'not_found' } });
  const h = await fetch(`${eva.httpUrl}/health`);
  t.match(await h.json(), { status: 'ok', media: true });
});

t.test('offers with a video m-line, a second audio m-line or no BUNDLE are refused with bad_sdp; audio plus a data channel is answered', async (t) => {
  const eva = await startEva(t);
  const peer = new Peer({ onAudio() {} }, { onlyHosts: ['127.0.0.1'] });
  t.teardown(() => peer.close());
  const offer = await peer.offer();
  t.match(offer, /a=group:BUNDLE 0\r\n/, 'werift offers bundle their m-lines');
  const video = 'm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n';
  const audioSection = offer.slice(offer.indexOf('m=audio'));
  const cases: [string, string, RegExp][] = [
    ['a video m-line', offer.replace('a=group:BUNDLE 0', 'a=group:BUNDLE 0 1') + video, /m=video/],
    ['a second audio m-line', offer.replace('a=group:BUNDLE 0', 'a=group:BUNDLE 0 1') + audioSection.replace('a=mid:0', 'a=mid:1'), /exactly one audio m-line/],
    ['no BUNDLE', offer.replace('a=group:BUNDLE 0\r\n', ''), /BUNDLE is required/],
    ['thousands of m-lines', offer + 'm=audio 9 RTP/AVP 0\r\n'.repeat(2000), /exactly one audio m-line/],
  ];
  const s = await socket(eva.wsUrl);
  t.teardown(() => s.ws.close());
  for (const [name, sdp, message] of cases) {
    s.ws.send(JSON.stringify({ type: 'offer', sdp }));
    const reply = await s.next();
    t.match(reply, { type: 'error', code: 'bad_sdp' }, name);
    t.match(reply.message, message, `the message names the rule: ${reply.message}`);
  }
  t.equal(eva.server.calls.size, 0, 'no call was made');

  const data = 'm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n';
  s.ws.send(JSON.stringify({ type: 'offer', sdp: offer.replace('a=group:BUNDLE 0', 'a=group:BUNDLE 0 1') + data }));
  const answered = await s.next(10_000);
  t.equal(answered.type, 'answer', `an offer with a data channel is answered (${answered.code ?? ''} ${answered.message ?? ''})`);
});
