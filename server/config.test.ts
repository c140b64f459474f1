import t from 'tap';
import { argvToEnv, loadConfig } from './config.js';
import { BATCH_WAIT_MS } from '../media/vad.js';

t.test('defaults need no environment at all', async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 8080);
  t.equal(c.host, '127.0.0.1');
  t.equal(c.dataDir, './data');
  t.same([c.stt, c.llm, c.tts], [[], [], []], 'auto-detect everything');
  t.equal(c.ollamaHost, 'http://127.0.0.1:11434');
  t.ok(c.turn.offThreshold < c.turn.onThreshold);
});

t.test('flags use the environment names and win over the environment', async (t) => {
  t.same(argvToEnv(['--port', '9000', '--eva-llm=groq,ollama', '--EVA_TTS', 'espeak']), { PORT: '9000', EVA_LLM: 'groq,ollama', EVA_TTS: 'espeak' });
  const c = loadConfig({ PORT: '1234', EVA_LLM: 'echo' }, ['--port', '4321', '--eva-llm', 'groq, ollama']);
  t.equal(c.port, 4321);
  t.same(c.llm, ['groq', 'ollama']);
});

t.test('wrong values are clear errors naming the setting', async (t) => {
  t.throws(() => loadConfig({ PORT: 'eighty' }), /PORT must be an integer/);
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT must be an integer from 0 to 65535/);
  t.throws(() => loadConfig({ EVA_LLM: 'gpt5' }), /EVA_LLM: unknown provider "gpt5"; choose from groq, ollama, echo/);
  t.throws(() => loadConfig({ OLLAMA_HOST: 'ftp://x' }), /OLLAMA_HOST must be a http\/https URL/);
  t.throws(() => loadConfig({ EVA_STT_URL: 'ftp://x' }), /EVA_STT_URL must be a http\/https\/ws\/wss URL/);
  t.throws(() => loadConfig({ EVA_MAX_EOU_MS: '300' }), /EVA_MAX_EOU_MS must be an integer from 480/);
  t.throws(() => loadConfig({ EVA_VAD_PAUSE_MS: '900', EVA_VAD_EOU_MS: '500' }), /EVA_VAD_PAUSE_MS must not exceed/);
  t.throws(() => loadConfig({}, ['--port']), /needs a value/);
  t.throws(() => loadConfig({}, ['stray']), /unexpected argument/);
});

t.test('EVA_EARLY_EOU_MS: default 120, 0 turns it off, and it must lie between the pause and the end-of-turn window', async (t) => {
  t.equal(loadConfig({}).earlyEndMs, 120);
  t.equal(loadConfig({ EVA_EARLY_EOU_MS: '0' }).earlyEndMs, 0);
  t.equal(loadConfig({ EVA_VAD_PAUSE_MS: '300', EVA_VAD_EOU_MS: '700' }).earlyEndMs, 300, 'the default follows a longer pause');
  t.throws(() => loadConfig({ EVA_VAD_PAUSE_MS: '160', EVA_EARLY_EOU_MS: '100' }), /EVA_EARLY_EOU_MS must be 0 \(off\) or from EVA_VAD_PAUSE_MS/);
  t.throws(() => loadConfig({ EVA_EARLY_EOU_MS: '900' }), /EVA_EARLY_EOU_MS/);
});

t.test('the end-of-turn windows: pause at the first silent window, 480 ms fallback, 1000 ms for a clearly unfinished turn', async (t) => {
  const c = loadConfig({});
  t.same([c.turn.pauseMs, c.turn.endOfTurnMs, c.turn.maxEndOfTurnMs], [32, 480, 1000]);
  t.equal(loadConfig({ EVA_VAD_EOU_MS: '1500' }).turn.maxEndOfTurnMs, 1500, 'the maximum is never below the window');
  t.equal(c.speculativeMax, 2);
  t.equal(loadConfig({ EVA_STT_SPECULATIVE_MAX: '0' }).speculativeMax, 0);
  t.equal(loadConfig({ EVA_STT_URL: 'ws://127.0.0.1:8000/v1/realtime' }).sttUrl, 'ws://127.0.0.1:8000/v1/realtime');
});

t.test('issue 10 settings: ICE servers, RTP ports, workers, drain, database URL', async (t) => {
  const c = loadConfig({});
  t.same(c.iceServers, []);
  t.equal(c.rtpPorts, undefined);
  t.ok(c.workers >= 1, 'workers default to the number of cores');
  t.equal(c.drainS, 10);
  t.equal(c.databaseUrl, undefined);
  t.same(loadConfig({ EVA_ICE_SERVERS: 'stun:10.0.0.1:3478, turn:alice:s%40cret@10.0.0.1:3478?transport=udp' }).iceServers, [
    { urls: ['stun:10.0.0.1:3478'] },
    { urls: ['turn:10.0.0.1:3478?transport=udp'], username: 'alice', credential: 's@cret' },
  ]);
  t.same(loadConfig({ EVA_ICE_SERVERS: '[{"urls":"turn:t.example:3478","username":"u","credential":"p"}]' }).iceServers, [{ urls: ['turn:t.example:3478'], username: 'u', credential: 'p' }]);
  t.throws(() => loadConfig({ EVA_ICE_SERVERS: 'http://x' }), /EVA_ICE_SERVERS: "http:\/\/x" is not a stun:/);
  t.throws(() => loadConfig({ EVA_ICE_SERVERS: '[{"urls":"turn:x","username":3}]' }), /"username" must be a string/);
  t.throws(() => loadConfig({ EVA_ICE_SERVERS: '[oops' }), /not valid JSON/);
  t.same(loadConfig({ EVA_RTP_PORTS: '40000-40999' }).rtpPorts, [40000, 40999]);
  t.throws(() => loadConfig({ EVA_RTP_PORTS: '5000' }), /EVA_RTP_PORTS must be a range/);
  t.throws(() => loadConfig({ EVA_RTP_PORTS: '41000-40000' }), /EVA_RTP_PORTS must be a range/);
  t.equal(loadConfig({ EVA_WORKERS: '1' }).workers, 1);
  t.throws(() => loadConfig({ EVA_WORKERS: '0' }), /EVA_WORKERS must be an integer/);
  t.equal(loadConfig({ EVA_DATABASE_URL: 'postgres://eva:pw@127.0.0.1:5432/eva' }).databaseUrl, 'postgres://eva:pw@127.0.0.1:5432/eva');
  const err = (() => {
    try {
      loadConfig({ EVA_DATABASE_URL: 'mysql://eva:hunter2@db/eva' });
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  })();
  t.match(err, /EVA_DATABASE_URL must be a postgres:/);
  t.notMatch(err, /hunter2/, 'the password is never repeated');
});

t.test('EVA_THREAD_NICE: 10 by default, 0 to 19', async (t) => {
  t.equal(loadConfig({}).threadNice, 10);
  t.equal(loadConfig({ EVA_THREAD_NICE: '0' }).threadNice, 0);
  t.throws(() => loadConfig({ EVA_THREAD_NICE: '-5' }), /EVA_THREAD_NICE must be an integer from 0 to 19/);
  t.throws(() => loadConfig({ EVA_THREAD_NICE: '20' }), /EVA_THREAD_NICE must be an integer from 0 to 19/);
});

t.test('EVA_EXIT_ON_STDIN_CLOSE: off by default, 0 or 1, and a flag like every setting', async (t) => {
  t.equal(loadConfig({}).exitOnStdinClose, false);
  t.equal(loadConfig({ EVA_EXIT_ON_STDIN_CLOSE: '1' }).exitOnStdinClose, true);
  t.equal(loadConfig({}, ['--eva-exit-on-stdin-close', '1']).exitOnStdinClose, true);
  t.throws(() => loadConfig({ EVA_EXIT_ON_STDIN_CLOSE: 'yes' }), /EVA_EXIT_ON_STDIN_CLOSE must be an integer from 0 to 1/);
});

t.test('EVA_VAD_BATCH_WAIT_MS: default the VAD engine\'s own, 0 to 20 ms', async (t) => {
  t.equal(loadConfig({}).vadBatchWaitMs, BATCH_WAIT_MS);
  t.equal(loadConfig({ EVA_VAD_BATCH_WAIT_MS: '0' }).vadBatchWaitMs, 0);
  t.throws(() => loadConfig({ EVA_VAD_BATCH_WAIT_MS: '50' }), /EVA_VAD_BATCH_WAIT_MS must be an integer from 0 to 20/);
});
