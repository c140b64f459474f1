import t from 'tap';
import { DEFAULT_PROFILES, describeProfile, evaEnv, parseBenchProfile, profilesFromArgs } from './profiles.js';

const urls = { groq: 'http://127.0.0.1:1001', openai: 'http://127.0.0.1:1001/openai/v1', ollama: 'http://127.0.0.1:1002' };

t.test('named profiles take the stand-ins’ latencies and a default LLM by name', async (t) => {
  const groq = parseBenchProfile('groq');
  t.equal(groq.llm, 'groq');
  t.equal(groq.tts, 'espeak');
  t.equal(groq.latency.ttftMs, 150);
  t.equal(groq.label, 'groq');
  const ollama = parseBenchProfile('ollama-gpu');
  t.equal(ollama.llm, 'ollama');
  t.equal(parseBenchProfile('instant').latency.sttMs, 0);
});

t.test('overrides and bench keys: --profile groq,ttftMs=200,tts=groq', async (t) => {
  const p = parseBenchProfile('groq,ttftMs=200,tts=groq');
  t.equal(p.latency.ttftMs, 200);
  t.equal(p.latency.sttMs, 150, 'the rest of the named profile stays');
  t.equal(p.tts, 'groq');
  t.equal(p.label, 'groq+ttftMs=200+tts=groq');
  t.equal(parseBenchProfile('ttftMs=5').latency.ttftMs, 5, 'overrides alone start from instant');
  t.equal(parseBenchProfile('instant,llm=ollama').llm, 'ollama');
});

t.test('bad specs are clear errors', async (t) => {
  t.throws(() => parseBenchProfile('groqq'), /unknown latency profile "groqq"; known: instant, groq, ollama-gpu, local-stream/);
  t.throws(() => parseBenchProfile('groq,ttft=3'), /unknown latency profile key "ttft".*bench keys: llm, tts, stt/);
  t.throws(() => parseBenchProfile('groq,stt=whisper'), /stt must be groq, openai or realtime/);
  t.throws(() => parseBenchProfile('local-stream,partialEveryMs=0'), /partialEveryMs must be at least 10 ms/);
  t.throws(() => parseBenchProfile('groq,llm=openai'), /llm must be groq or ollama/);
  t.throws(() => parseBenchProfile(''), /empty profile/);
});

t.test('EVA’s environment per profile points the real adapters at the stand-ins', async (t) => {
  t.same(evaEnv(parseBenchProfile('groq'), urls), {
    EVA_TTS: 'espeak',
    GROQ_API_KEY: 'standin',
    GROQ_BASE_URL: 'http://127.0.0.1:1001',
    EVA_STT: 'groq',
    EVA_LLM: 'groq',
  });
  t.same(evaEnv(parseBenchProfile('ollama-gpu'), urls), {
    EVA_TTS: 'espeak',
    EVA_STT: 'openai',
    EVA_STT_URL: 'http://127.0.0.1:1001/openai/v1',
    EVA_STT_API_KEY: 'standin',
    EVA_LLM: 'ollama',
    OLLAMA_HOST: 'http://127.0.0.1:1002',
  });
  const groqTts = evaEnv(parseBenchProfile('ollama-gpu,tts=groq'), urls);
  t.equal(groqTts.GROQ_BASE_URL, 'http://127.0.0.1:1001');
  t.equal(groqTts.EVA_TTS, 'groq');
});

t.test('local-stream: streaming STT (partials every 100 ms, final 30 ms after speech), TTFT 60 ms, 150 tok/s, Ollama', async (t) => {
  const p = parseBenchProfile('local-stream');
  t.same(p.latency, { sttMs: 30, ttftMs: 60, tokensPerSec: 150, ttsFirstMs: 0, partialEveryMs: 100 });
  t.equal(p.stt, 'realtime');
  t.equal(p.llm, 'ollama');
  t.equal(p.tts, 'espeak');
  t.same(evaEnv(p, { ...urls, realtime: 'ws://127.0.0.1:1003/v1/realtime' }), {
    EVA_TTS: 'espeak',
    EVA_STT: 'realtime',
    EVA_STT_URL: 'ws://127.0.0.1:1003/v1/realtime',
    EVA_STT_API_KEY: 'standin',
    EVA_LLM: 'ollama',
    OLLAMA_HOST: 'http://127.0.0.1:1002',
  });
  t.throws(() => evaEnv(p, urls), /needs the realtime stand-in's URL/);
  const slower = parseBenchProfile('local-stream,sttMs=80,partialEveryMs=200');
  t.same([slower.latency.sttMs, slower.latency.partialEveryMs, slower.stt], [80, 200, 'realtime']);
  t.equal(parseBenchProfile('local-stream,stt=openai').stt, 'openai', 'stt= picks the segment adapter instead');
  t.equal(parseBenchProfile('groq,stt=realtime').llm, 'groq', 'any profile can stream');
  t.equal(parseBenchProfile('groq').stt, 'groq');
  t.equal(parseBenchProfile('ollama-gpu').stt, 'openai');
  t.match(describeProfile(p), /streaming STT \(partials every 100 ms, final 30 ms after the commit\), TTFT 60 ms, 150 tok\/s, LLM ollama/);
});

t.test('profiles from the command line', async (t) => {
  t.same(profilesFromArgs([]).map((p) => p.spec), [...DEFAULT_PROFILES]);
  t.same(profilesFromArgs(['groq,ttftMs=200']).map((p) => p.label), ['groq+ttftMs=200']);
  t.same(profilesFromArgs([], 'instant,groq').map((p) => p.spec), ['instant', 'groq']);
  t.match(describeProfile(parseBenchProfile('groq')), /STT 150 ms, TTFT 150 ms, 500 tok\/s, LLM groq, TTS embedded eSpeak/);
  t.match(describeProfile(parseBenchProfile('instant')), /tokens at once/);
});
