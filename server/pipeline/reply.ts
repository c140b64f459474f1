// One reply turn: (audio → STT →) text → LLM → chunker → TTS → resampler → the call's audio queue.
// Stages run concurrently, joined by a bounded queue, and all share one AbortSignal: a barge-in or a newer
// turn aborts the LLM request and the TTS synthesis in flight, and the turn ends without error.
//
// A turn may start speculatively on a pause (`committed = false`): STT, the LLM and the first piece's TTS run,
// but nothing leaves — events and audio are held in `held` until commit() (the silence became an end of turn),
// or thrown away by abort() (the person went on talking). Later pieces wait for the commit before synthesis,
// which bounds what is held to one piece of audio.
import type { AudioOut } from '../agent.js';
import { isAbort, EvaError, ProviderError } from '../errors.js';
import { linkAbort } from '../abort-link.js';
import type { Logger } from '../log.js';
import type { ServerMessage } from '../signaling.js';
import type { LlmProvider, SttProvider, SttResult, TtsProvider } from '../providers/types.js';
import { createResampler, type Resampler } from '../../media/resample.js';
import { createChunker } from './chunker.js';
import type { Conversation } from './history.js';
import { AsyncQueue } from './queue.js';
import type { SpokenSegment } from './heard.js';

export interface ReplyDeps {
  stt: SttProvider | null;
  llm: LlmProvider;
  tts: TtsProvider;
  voice?: string;
  language?: string;
  /** false: the reply is text only (a Realtime session with `output_modalities: ['text']`): no synthesis at all. */
  speak?: boolean;
  conversation: Conversation;
  out: AudioOut;
  emit(msg: ServerMessage): void;
  log: Logger;
  /** The call's signal: the turn ends with the call. */
  callSignal: AbortSignal;
  now(): number;
}

export interface ReplyTimes {
  eou_ms?: number;
  stt_ms?: number;
  llm_ttft_ms?: number;
  first_sentence_ms?: number;
  tts_first_audio_ms?: number;
  first_audio_ms?: number;
}

export type ReplyInput =
  /** `transcribe` overrides the segment STT (streamed pieces, a shared request); it gets the turn's signal. */
  | { kind: 'audio'; pcm16k: Int16Array; transcribe?: (signal: AbortSignal) => Promise<SttResult> }
  | { kind: 'text'; text: string };

export class ReplyTurn {
  readonly segments: SpokenSegment[] = [];
  readonly times: ReplyTimes = {};
  transcript = '';
  text = '';
  /** Set once the LLM stream ended and every piece is queued for playback. */
  done = false;
  failed: EvaError | null = null;
  /** performance.now() of the end of the person's speech (voice turns) or of the typed message. */
  speechEndAt = 0;
  /** Whether the reply's first frame has been sent. */
  talking = false;
  llmProvider: string | undefined;
  /** Told the transcript as soon as STT returns (the agent may decide to end the turn early on it). */
  onTranscript?: (text: string) => void;
  /** How the end of this turn was decided (the predictor's class; `early` = before the end-of-turn window). */
  eou?: { cls: string; reason: string; early: boolean };
  /** Set by the agent once the turn played out and was written to the history. */
  finished = false;
  metricsSent = false;

  private readonly ctrl = new AbortController();
  readonly signal: AbortSignal;
  /** Cuts this turn's signal loose from the call's (at the end of run() or on abort), so the call keeps nothing of it. */
  private readonly unlink: () => void;
  private committed: boolean;
  private held: (() => void)[] = [];
  private commitWaiters: (() => void)[] = [];
  private nextSegment: number;

  constructor(
    readonly turn: number,
    private readonly deps: ReplyDeps,
    opts: { speculative: boolean; speechEndAt: number; eouMs?: number },
  ) {
    this.signal = this.ctrl.signal;
    this.unlink = linkAbort(deps.callSignal, this.ctrl);
    this.committed = !opts.speculative;
    this.speechEndAt = opts.speechEndAt;
    if (opts.eouMs !== undefined) this.times.eou_ms = round(opts.eouMs);
    this.nextSegment = turn * 1000;
  }

  get aborted(): boolean {
    return this.signal.aborted;
  }

  get isCommitted(): boolean {
    return this.committed;
  }

  /** Release what was held and let the rest flow. */
  commit(info?: { speechEndAt: number; eouMs: number }): void {
    if (this.committed || this.aborted) return;
    if (info) {
      this.speechEndAt = info.speechEndAt;
      this.times.eou_ms = round(info.eouMs);
    }
    this.committed = true;
    const held = this.held;
    this.held = [];
    for (const fn of held) fn();
    for (const w of this.commitWaiters.splice(0)) w();
  }

  abort(): void {
    this.ctrl.abort();
    this.unlink();
    this.held = [];
    for (const w of this.commitWaiters.splice(0)) w();
  }

  private out(fn: () => void): void {
    if (this.aborted) return;
    if (this.committed) fn();
    else this.held.push(fn);
  }

  private emit(msg: ServerMessage): void {
    this.out(() => this.deps.emit(msg));
  }

  private waitCommit(): Promise<void> {
    if (this.committed || this.aborted) return Promise.resolve();
    return new Promise((r) => this.commitWaiters.push(r));
  }

  /** Runs the whole turn. Never throws: failures are reported as `error` events and kept in `failed`. */
  async run(input: ReplyInput): Promise<void> {
    const d = this.deps;
    try {
      if (input.kind === 'audio') {
        const stt = d.stt;
        if (!input.transcribe && !stt) throw new EvaError('no_stt', 'no speech-to-text provider is configured');
        const t0 = d.now();
        const res = input.transcribe
          ? await input.transcribe(this.signal)
          : await stt!.transcribe(input.pcm16k, { signal: this.signal, language: d.language });
        this.times.stt_ms = round(d.now() - t0);
        this.transcript = res.text.trim();
      } else {
        this.transcript = input.text;
      }
      if (this.aborted) return;
      this.onTranscript?.(this.transcript);
      this.emit({ type: 'transcript', turn: this.turn, text: this.transcript, final: true });
      if (!/\p{L}|\p{N}/u.test(this.transcript)) {
        // Noise that the VAD took for speech, or an empty transcript: nothing to answer.
        this.done = true;
        return;
      }
      await this.think();
    } catch (err) {
      if (isAbort(err) || this.aborted) return;
      this.failed =
        err instanceof EvaError ? err : new ProviderError('pipeline', 'provider_error', (err as Error).message ?? String(err), { cause: err });
      d.log.warn('turn failed', { turn: this.turn, code: this.failed.code, err: this.failed.message });
      this.emit({ type: 'error', code: this.failed.code, message: this.failed.message });
    } finally {
      this.done = true;
      this.unlink();
    }
  }

  private async think(): Promise<void> {
    const d = this.deps;
    const messages = d.conversation.toMessages(this.transcript);
    const pieces = new AsyncQueue<string>(32);
    const chunker = createChunker();
    const llmStart = d.now();
    let ttsError: unknown = null;
    const speaking = this.speak(pieces).catch((err: unknown) => {
      ttsError = err;
      pieces.fail(err);
    });
    try {
      this.llmProvider = d.llm.name;
      for await (const delta of d.llm.stream(messages, { signal: this.signal, onProvider: (name) => (this.llmProvider = name) })) {
        if (this.aborted || ttsError) break;
        if (this.times.llm_ttft_ms === undefined) this.times.llm_ttft_ms = round(d.now() - llmStart);
        this.text += delta;
        this.emit({ type: 'reply', turn: this.turn, delta });
        for (const piece of chunker.push(delta)) {
          if (this.times.first_sentence_ms === undefined) this.times.first_sentence_ms = round(d.now() - llmStart);
          await pieces.push(piece);
        }
      }
      if (!this.aborted) {
        for (const piece of chunker.flush()) {
          if (this.times.first_sentence_ms === undefined) this.times.first_sentence_ms = round(d.now() - llmStart);
          await pieces.push(piece);
        }
      }
      pieces.close();
      // The text is complete now; its audio may play for a while yet (the page shows the text at once).
      if (!this.aborted && !ttsError) this.emit({ type: 'reply_end', turn: this.turn, text: this.text.trim() });
    } catch (err) {
      pieces.fail(err);
      await speaking;
      throw err;
    }
    await speaking;
    if (ttsError) throw ttsError;
  }

  private async speak(pieces: AsyncIterable<string>): Promise<void> {
    const d = this.deps;
    let resampler: Resampler | null = null;
    try {
      let index = 0;
      for await (const piece of pieces) {
        if (this.aborted) return;
        if (d.speak === false) continue; // text only: the pieces are drained, nothing is synthesized
        if (index++ > 0) await this.waitCommit();
        if (this.aborted) return;
        const seg: SpokenSegment = { id: this.nextSegment++, text: piece, words: [] };
        this.segments.push(seg);
        const t0 = d.now();
        let samplesOut = 0;
        let rate = 0;
        for await (const chunk of d.tts.synthesize(piece, { signal: this.signal, voice: d.voice })) {
          if (this.aborted) return;
          if (chunk.type === 'word') {
            seg.words.push({ audioMs: chunk.audioMs, start: chunk.textOffset, end: chunk.textOffset + chunk.textLength });
            continue;
          }
          if (this.times.tts_first_audio_ms === undefined) this.times.tts_first_audio_ms = round(d.now() - t0);
          if (chunk.sampleRate !== rate) {
            resampler?.destroy();
            resampler = await createResampler(chunk.sampleRate, d.out.sampleRate);
            rate = chunk.sampleRate;
          }
          const pcm = resampler!.process(chunk.samples);
          samplesOut += pcm.length;
          this.out(() => d.out.enqueue(pcm, seg.id));
          if (this.committed) await d.out.waitForRoom();
        }
        const tail = resampler?.flush();
        resampler?.destroy();
        resampler = null;
        if (tail && tail.length) {
          samplesOut += tail.length;
          this.out(() => d.out.enqueue(tail, seg.id));
        }
        this.out(() => d.out.flush());
        seg.totalMs = (samplesOut * 1000) / d.out.sampleRate;
      }
    } finally {
      resampler?.destroy();
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
