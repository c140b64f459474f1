// LLM on Groq (OpenAI-compatible chat completions, streamed as SSE) through groq-sdk. One client for the life of
// the adapter keeps the connection warm; the turn's AbortSignal goes to the SDK, so a barge-in closes the request.
import { ProviderError } from '../errors.js';
import { createGroqClient, groqError, groqHealth, type Groq } from './groq-client.js';
import { abortError, throwIfAborted } from './http-util.js';
import type { ChatMessage, LlmOptions, LlmProvider, ProviderHealth } from './types.js';

export interface GroqLlmOptions {
  /** Default: GROQ_API_KEY (the constructor throws a ProviderError when there is none). */
  apiKey?: string;
  /** Default: GROQ_BASE_URL, else https://api.groq.com. */
  baseURL?: string;
  /** Default 'llama-3.1-8b-instant': the lowest time to first token on Groq. */
  model?: string;
  temperature?: number;
  /** Upper bound on the reply length; spoken answers are short. Default 400 tokens. */
  maxTokens?: number;
  /** Time to the response headers, ms. Default 20 000. */
  timeoutMs?: number;
  /** health() deadline, ms. Default 2000. */
  healthTimeoutMs?: number;
  /** Adapter name in errors and metrics. Default 'groq'. */
  name?: string;
}

export const GROQ_DEFAULT_LLM_MODEL = 'llama-3.1-8b-instant';

export class GroqLlm implements LlmProvider {
  readonly name: string;
  readonly model: string;
  private readonly client: Groq;
  private readonly opts: GroqLlmOptions;

  constructor(opts: GroqLlmOptions = {}) {
    this.name = opts.name ?? 'groq';
    this.model = opts.model ?? GROQ_DEFAULT_LLM_MODEL;
    this.opts = opts;
    this.client = createGroqClient(this.name, opts);
  }

  async *stream(messages: readonly ChatMessage[], { signal }: LlmOptions): AsyncIterable<string> {
    throwIfAborted(signal);
    let stream: AsyncIterable<Groq.Chat.ChatCompletionChunk>;
    try {
      stream = await this.client.chat.completions.create(
        {
          model: this.model,
          messages: messages.map((m) => ({ role: m.role, content: m.content })),
          stream: true,
          max_completion_tokens: this.opts.maxTokens ?? 400,
          ...(this.opts.temperature !== undefined ? { temperature: this.opts.temperature } : {}),
        },
        { signal },
      );
    } catch (err) {
      throw groqError(this.name, err, signal);
    }
    let finished = false;
    try {
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        const delta = choice?.delta?.content;
        if (delta) yield delta;
        if (choice?.finish_reason) finished = true;
      }
    } catch (err) {
      throw groqError(this.name, err, signal);
    }
    // groq-sdk ends an aborted stream quietly; the caller must still see the abort.
    if (signal.aborted) throw abortError(signal);
    if (!finished) throw new ProviderError(this.name, 'provider_error', 'stream ended before the reply was complete', { retryable: true });
  }

  health(signal?: AbortSignal): Promise<ProviderHealth> {
    return groqHealth(this.name, this.client, this.model, this.opts.healthTimeoutMs ?? 2000, signal);
  }
}
