// A browser page for test/realtime-browser.test.ts: OpenAI's own `@openai/agents-realtime`, its WebRTC
// transport pointed at EVA's `/v1/realtime/calls`, with an ephemeral `ek_` key from EVA's client_secrets.
// Bundled by the test with esbuild (plain JavaScript: it is not type-checked with the server's Node types).
// It records every transport event and the levels of the microphone and of EVA's voice, for the test to read.
import { OpenAIRealtimeWebRTC, RealtimeAgent, RealtimeSession } from '@openai/agents-realtime';

const rt = { state: 'idle', error: null, events: [], mic: [], remote: [], interrupted: 0 };
window.rt = rt;

/** Samples a stream's level every 20 ms (RMS of the analyser's window) into `into`. */
function probe(ctx, stream, into) {
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    into.push({ at: performance.now(), rms: Math.sqrt(sum / buf.length) });
    if (into.length > 3000) into.shift();
  }, 20);
}

window.startRealtime = async ({ baseUrl, key, instructions }) => {
  rt.state = 'connecting';
  try {
    const ctx = new AudioContext();
    await ctx.resume();
    const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    probe(ctx, mic, rt.mic);
    const audioElement = document.createElement('audio');
    audioElement.autoplay = true;
    document.body.append(audioElement);
    const transport = new OpenAIRealtimeWebRTC({
      baseUrl,
      mediaStream: mic,
      audioElement,
      changePeerConnection: async (pc) => {
        pc.addEventListener('track', (e) => probe(ctx, e.streams[0] ?? new MediaStream([e.track]), rt.remote));
        return pc;
      },
    });
    const session = new RealtimeSession(new RealtimeAgent({ name: 'eva', instructions }), { transport, model: 'gpt-realtime' });
    session.on('transport_event', (ev) => rt.events.push({ at: performance.now(), type: ev.type, ev }));
    session.on('audio_interrupted', () => rt.interrupted++);
    session.on('error', (e) => (rt.error = String(e?.error?.message ?? e?.error ?? e)));
    await session.connect({ apiKey: key });
    rt.session = session;
    rt.state = 'connected';
  } catch (err) {
    rt.state = 'failed';
    rt.error = String(err && err.stack ? err.stack : err);
  }
};
