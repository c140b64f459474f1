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
  t.throws(() => parseBenchProfile('groqq'), /unknown latency profile "groqq"; known: instant, groq, ollama-gpu/);
  t.throws(() => parseBenchProfile('groq,ttft=3'), /unknown latency profile key "ttft".*bench keys: llm, tts/);
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

t.test('profiles from the command line', async (t) => {
  t.same(profilesFromArgs([]).map((p) => p.spec), [...DEFAULT_PROFILES]);
  t.same(profilesFromArgs(['groq,ttftMs=200']).map((p) => p.label), ['groq+ttftMs=200']);
  t.same(profilesFromArgs([], 'instant,groq').map((p) => p.spec), ['instant', 'groq']);
  t.match(describeProfile(parseBenchProfile('groq')), /STT 150 ms, TTFT 150 ms, 500 tok\/s, LLM groq, TTS embedded eSpeak/);
  t.match(describeProfile(parseBenchProfile('instant')), /tokens at once/);
});
