import t from 'tap';
import { checkOfferSdp, MAX_SDP_BYTES, SdpError } from './sdp-check.js';

const HEAD = 'v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n';
const AUDIO = (mid = '0') => `m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:${mid}\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n`;
const DATA = (mid = '1') => `m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:${mid}\r\na=sctp-port:5000\r\n`;
const VIDEO = (mid = '1') => `m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:${mid}\r\na=rtpmap:96 VP8/90000\r\n`;
const bundle = (...mids: string[]) => `a=group:BUNDLE ${mids.join(' ')}\r\n`;

/** The shape of a Chromium audio-only offer (the page's), trimmed: BUNDLE of one, Opus as 111 among other codecs. */
const CHROMIUM = [
  'v=0', 'o=- 4611731400430051336 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=extmap-allow-mixed', 'a=msid-semantic: WMS 5f2d',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126', 'c=IN IP4 0.0.0.0', 'a=rtcp:9 IN IP4 0.0.0.0',
  'a=candidate:1 1 udp 2113937151 3a1c.local 54400 typ host generation 0 network-cost 999', 'a=ice-ufrag:Ab1c', 'a=ice-pwd:0123456789abcdefghijklmn',
  'a=ice-options:trickle', 'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
  'a=setup:actpass', 'a=mid:0', 'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level', 'a=sendrecv', 'a=msid:5f2d 9c1e', 'a=rtcp-mux',
  'a=rtpmap:111 opus/48000/2', 'a=rtcp-fb:111 transport-cc', 'a=fmtp:111 minptime=10;useinbandfec=1', 'a=rtpmap:63 red/48000/2',
  'a=fmtp:63 111/111', 'a=rtpmap:9 G722/8000', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:13 CN/8000',
  'a=rtpmap:110 telephone-event/48000', 'a=rtpmap:126 telephone-event/8000', 'a=ssrc:1234 cname:abcd', '',
].join('\r\n');

/** [name, sdp, expected code or null for accepted, message pattern]. */
const cases: [string, unknown, 'bad_sdp' | 'no_audio' | null, RegExp?][] = [
  ['one bundled audio m-line (a werift offer)', HEAD + bundle('0') + AUDIO(), null],
  ['a Chromium audio-only offer', CHROMIUM, null],
  ['audio plus a data channel, both bundled (a Chromium offer with a data channel)', HEAD + bundle('0', '1') + AUDIO() + DATA(), null],
  ['the data channel first', HEAD + bundle('1', '0') + DATA('1') + AUDIO('0'), null],
  ['LF line endings', (HEAD + bundle('0') + AUDIO()).replace(/\r\n/g, '\n'), null],
  ['not a string', 42, 'bad_sdp', /SDP string/],
  ['no v=0', 'hello', 'bad_sdp', /starting with v=0/],
  ['over the size cap', HEAD + bundle('0') + AUDIO() + 'a=x:' + 'y'.repeat(MAX_SDP_BYTES), 'bad_sdp', /larger than 64 KiB/],
  ['no m-line at all', HEAD + bundle('0'), 'no_audio', /no audio m-line/],
  ['video only', HEAD + bundle('1') + VIDEO(), 'no_audio', /no audio m-line/],
  ['audio without Opus', HEAD + bundle('0') + AUDIO().replace('opus/48000/2', 'PCMU/8000'), 'no_audio', /Opus/],
  ['Opus named only in another section', HEAD + bundle('0', '1') + AUDIO().replace('opus/48000/2', 'PCMU/8000') + DATA() + 'a=rtpmap:111 opus/48000/2\r\n', 'no_audio', /Opus/],
  ['audio and video', HEAD + bundle('0', '1') + AUDIO() + VIDEO(), 'bad_sdp', /m=video/],
  ['two audio m-lines', HEAD + bundle('0', '1') + AUDIO('0') + AUDIO('1'), 'bad_sdp', /exactly one audio m-line/],
  ['two data channels', HEAD + bundle('0', '1', '2') + AUDIO() + DATA('1') + DATA('2'), 'bad_sdp', /at most one application/],
  ['thousands of m-lines', HEAD + bundle('0') + AUDIO() + 'm=audio 9 RTP/AVP 0\r\n'.repeat(3000), 'bad_sdp', /exactly one audio m-line/],
  ['thousands of video m-lines', HEAD + bundle('0') + AUDIO() + VIDEO().repeat(1000), 'bad_sdp', /more m-lines/],
  ['no BUNDLE group', HEAD + AUDIO(), 'bad_sdp', /BUNDLE is required: the offer has no a=group:BUNDLE/],
  ['BUNDLE leaves out the data channel', HEAD + bundle('0') + AUDIO() + DATA(), 'bad_sdp', /does not include the application m-line/],
  ['a BUNDLE line inside a media section does not count', HEAD + AUDIO() + bundle('0'), 'bad_sdp', /no a=group:BUNDLE/],
  ['an m-line without a mid', HEAD + bundle('0') + AUDIO().replace('a=mid:0\r\n', ''), 'bad_sdp', /has no a=mid/],
];

for (const [name, sdp, code, message] of cases) {
  t.test(`checkOfferSdp: ${name} → ${code ?? 'accepted'}`, async (t) => {
    if (code === null) {
      t.equal(checkOfferSdp(sdp), sdp);
      return;
    }
    t.throws(() => checkOfferSdp(sdp), { code, ...(message && { message }) });
    try {
      checkOfferSdp(sdp);
    } catch (err) {
      t.type(err, SdpError);
    }
  });
}

t.test('a 64 KiB offer of m-lines is checked in well under a millisecond per KiB (reported)', async (t) => {
  const sdp = (HEAD + bundle('0') + AUDIO() + VIDEO().repeat(2000)).slice(0, MAX_SDP_BYTES);
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) t.throws(() => checkOfferSdp(sdp));
  t.comment(`checkOfferSdp on a ${(sdp.length / 1024).toFixed(0)} KiB hostile offer: ${((performance.now() - t0) / 100).toFixed(3)} ms each`);
});
