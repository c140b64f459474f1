// The zero-config LLM: repeats what the person said, word by word, with no delay. It makes a call work end to
// end with no model at all, and gives the tests a deterministic answer.
import { throwIfAborted } from './http-util.js';
import type { ChatMessage, LlmOptions, LlmProvider, ProviderHealth } from './types.js';

export class EchoLlm implements LlmProvider {
  readonly name = 'echo';

  async *stream(messages: readonly ChatMessage[], { signal }: LlmOptions): AsyncIterable<string> {
    throwIfAborted(signal);
    const last = [...messages].reverse().find((m) => m.role === 'user');
    const said = last?.content.trim() ?? '';
    const reply = said ? `You said: ${said}` : 'I did not hear anything.';
    for (const word of reply.match(/\s*\S+/g) ?? []) {
      throwIfAborted(signal);
      yield word;
    }
  }

  async health(): Promise<ProviderHealth> {
    return { ok: true, detail: 'echo' };
  }
}
