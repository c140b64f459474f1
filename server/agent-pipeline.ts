// The conversational agent: each turn goes STT → LLM → TTS (pipeline/reply.ts). This file decides which turn
// is current: it starts a speculative turn on a pause, commits it at the end of turn or throws it away when
// the person goes on, aborts whatever is playing on a barge-in, and keeps the history to what was heard.
// With no STT configured, voice turns fall back to the audio echo (and say so once); typed turns still get a
// spoken answer.
import type { Agent, AgentContext, TurnInfo } from './agent.js';
import { createEchoAgent } from './agent-echo.js';
import { Conversation } from './pipeline/history.js';
import { heardText } from './pipeline/heard.js';
import { looksComplete } from './pipeline/endpoint.js';
import { ReplyTurn, type ReplyInput } from './pipeline/reply.js';
import type { ChatMessage, LlmProvider, SttProvider, TtsProvider } from './providers/types.js';
import type { FrameTag } from '../media/pacer.js';

export interface PipelineOptions {
  stt: SttProvider | null;
  llm: LlmProvider;
  tts: TtsProvider;
  systemPrompt: string;
  historyTurns: number;
  voice?: string;
  language?: string;
  /** Prior messages (a persisted session continuing). */
  history?: ChatMessage[];
  /** Start STT and the LLM on a pause, before the end of turn is certain. */
  speculative?: boolean;
  /**
   * Answer after this much silence (ms from the end of speech) instead of waiting for the end-of-turn window,
   * when the speculative transcript reads as finished (pipeline/endpoint.ts). 0 = always wait for the window.
   */
  earlyEndMs?: number;
  now?: () => number;
  /** Told about every finished turn (persistence, metrics); `heard` is what was played of an interrupted reply. */
  onTurnDone?(turn: ReplyTurn, outcome: TurnOutcome, heard?: string): void;
  onBargeIn?(): void;
}

export type TurnOutcome = 'done' | 'interrupted' | 'failed' | 'discarded';

export function createPipelineAgent(opts: PipelineOptions, ctx: AgentContext): Agent {
  const conversation = new Conversation(opts.systemPrompt, opts.historyTurns, opts.history);
  const echo = opts.stt ? null : createEchoAgent(ctx);
  let turnNo = 0;
  let current: ReplyTurn | null = null;
  let speculative: ReplyTurn | null = null;
  /** A speculative turn answered before the end of turn: the end of turn that follows belongs to it. */
  let early: ReplyTurn | null = null;
  let earlyTimer: NodeJS.Timeout | undefined;
  const now = opts.now ?? (() => performance.now());
  let lastPlayed: FrameTag | null = null;
  let warnedNoStt = false;

  const replyDeps = {
    stt: opts.stt,
    llm: opts.llm,
    tts: opts.tts,
    voice: opts.voice,
    language: opts.language,
    conversation,
    out: ctx.out,
    emit: ctx.emit,
    log: ctx.log,
    callSignal: ctx.signal,
    now,
  };

  function settle(turn: ReplyTurn, outcome: TurnOutcome, heard?: string): void {
    try {
      opts.onTurnDone?.(turn, outcome, heard);
    } catch (err) {
      ctx.log.warn('onTurnDone failed', { err });
    }
  }

  /** Start a turn's work. History is written when the turn ends: whole when played out, cut on a barge-in. */
  function launch(turn: ReplyTurn, input: ReplyInput): void {
    void turn.run(input).then(() => {
      if (turn.aborted) return; // barge-in / discard: settled by whoever aborted it
      if (turn.failed) settle(turn, 'failed');
      maybeFinish(turn);
    });
  }

  function maybeFinish(turn: ReplyTurn): void {
    if (current !== turn || !turn.done || !turn.isCommitted || ctx.out.speaking) return;
    if (!turn.talking) emitMetrics(turn);
    current = null;
    if (!turn.failed && turn.transcript && turn.text.trim()) {
      conversation.add('user', turn.transcript);
      conversation.add('assistant', turn.text.trim());
      settle(turn, 'done');
    }
    ctx.emit({ type: 'state', state: 'listening' });
  }

  function emitMetrics(turn: ReplyTurn): void {
    ctx.emit({ type: 'metrics', turn: turn.turn, ...turn.times });
  }

  /** `retracted`: a false cut-off; the whole turn is answered at its real end, so none of this one is kept. */
  function stopCurrent(reason: 'interrupted' | 'superseded' | 'retracted'): void {
    const turn = current;
    if (!turn) return;
    current = null;
    turn.abort();
    ctx.out.clear();
    if (reason === 'retracted') {
      ctx.emit({ type: 'interrupted', turn: turn.turn, heard: '' });
      settle(turn, 'discarded');
      return;
    }
    const played = lastPlayed && turn.segments.some((s) => s.id === lastPlayed!.segment) ? lastPlayed : null;
    const heard = heardText(turn.segments, played);
    if (turn.transcript) {
      conversation.add('user', turn.transcript);
      if (heard) conversation.add('assistant', heard);
    }
    if (reason === 'interrupted') ctx.emit({ type: 'interrupted', turn: turn.turn, heard });
    settle(turn, 'interrupted', heard);
  }

  function begin(input: ReplyInput, info: { speechEndAt: number; eouMs?: number }, isSpeculative: boolean): ReplyTurn {
    const turn = new ReplyTurn(++turnNo, replyDeps, { speculative: isSpeculative, ...info });
    launch(turn, input);
    return turn;
  }

  function promote(turn: ReplyTurn): void {
    stopCurrent('superseded');
    current = turn;
    ctx.emit({ type: 'state', state: 'thinking' });
    maybeFinish(turn);
  }

  return {
    providers: { stt: opts.stt?.name ?? 'none', llm: opts.llm.name, tts: opts.tts.name },

    onPause(audio16k, info: TurnInfo) {
      if (!opts.stt || opts.speculative === false) return;
      speculative?.abort();
      const turn = begin({ kind: 'audio', pcm16k: audio16k }, { speechEndAt: info.speechEndAt }, true);
      speculative = turn;
      if (opts.earlyEndMs) {
        const earlyMs = opts.earlyEndMs;
        turn.onTranscript = (text) => {
          if (!looksComplete(text)) return;
          clearTimeout(earlyTimer);
          earlyTimer = setTimeout(() => {
            if (speculative !== turn || turn.aborted) return;
            speculative = null;
            early = turn;
            turn.commit({ speechEndAt: info.speechEndAt, eouMs: now() - info.speechEndAt });
            promote(turn);
          }, Math.max(0, info.speechEndAt + earlyMs - now()));
        };
      }
    },

    onResume() {
      clearTimeout(earlyTimer);
      if (speculative) {
        speculative.abort();
        settle(speculative, 'discarded');
        speculative = null;
      }
      if (early) {
        // The person went on after EVA started to answer: take the answer back.
        const turn = early;
        early = null;
        if (current === turn) {
          stopCurrent('retracted');
          ctx.emit({ type: 'state', state: 'listening' });
        } else {
          settle(turn, 'discarded');
        }
      }
    },

    onEndOfTurn(audio16k, info) {
      if (early) {
        // Already answered (early end): this end of turn is the same speech.
        early = null;
        return;
      }
      if (!opts.stt) {
        if (!warnedNoStt) {
          warnedNoStt = true;
          ctx.emit({ type: 'error', code: 'no_stt', message: 'no speech-to-text provider is configured (set GROQ_API_KEY or EVA_STT_URL); echoing your audio instead. Typed messages get spoken answers.' });
        }
        // One turn counter for echoed and typed turns, so their events never share a number.
        echo!.onEndOfTurn(audio16k, { ...info, turn: ++turnNo });
        return;
      }
      let turn = speculative;
      speculative = null;
      if (turn && !turn.aborted) {
        turn.commit({ speechEndAt: info.speechEndAt, eouMs: info.eouMs });
      } else {
        turn = begin({ kind: 'audio', pcm16k: audio16k }, { speechEndAt: info.speechEndAt, eouMs: info.eouMs }, false);
      }
      promote(turn);
    },

    onText(text) {
      const turn = begin({ kind: 'text', text }, { speechEndAt: performance.now() }, false);
      promote(turn);
    },

    onBargeIn() {
      opts.onBargeIn?.();
      // Without STT the echo may be playing, or a typed turn's spoken reply: stop whichever it is.
      if (echo && !current) {
        echo.onBargeIn();
        return;
      }
      stopCurrent('interrupted');
      ctx.emit({ type: 'state', state: 'listening' });
    },

    onTalkStart(at) {
      if (echo && !current) {
        echo.onTalkStart?.(at);
        return;
      }
      const turn = current;
      if (!turn || turn.talking) return;
      turn.talking = true;
      turn.times.first_audio_ms = Math.round((at - turn.speechEndAt) * 10) / 10;
      ctx.emit({ type: 'state', state: 'speaking' });
      emitMetrics(turn);
    },

    onTalkEnd(at) {
      if (echo && !current) {
        echo.onTalkEnd?.(at);
        return;
      }
      if (current) maybeFinish(current);
    },

    onPlayed(tag) {
      lastPlayed = tag;
      echo?.onPlayed?.(tag);
    },

    close() {
      clearTimeout(earlyTimer);
      speculative?.abort();
      current?.abort();
      speculative = null;
      current = null;
      echo?.close();
    },
  };
}
