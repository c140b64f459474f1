// The conversational agent: each turn goes STT → LLM → TTS (pipeline/reply.ts). Which turn is current — started
// speculatively at the first silent window, answered early when the end-of-turn predictor is sure, committed at
// the end of turn, discarded or retracted when the person goes on, interrupted by a barge-in — is decided by the
// pure reducer in pipeline/turn-state.ts; this file is its shell: it owns the ReplyTurns, the streaming STT
// socket and the history, and runs the reducer's effects. With no STT configured, voice turns fall back to the
// audio echo (and say so once); typed turns still get a spoken answer.
import type { Agent, AgentContext, AgentUpdate, SilenceInfo, SpeechInfo, TurnInfo } from './agent.js';
import { createEchoAgent } from './agent-echo.js';
import { isAbort } from './errors.js';
import { Conversation } from './pipeline/history.js';
import { heardText } from './pipeline/heard.js';
import { DEFAULT_EOU_CONFIG, type Contour, type EouVerdict } from './pipeline/eou.js';
import { ReplyTurn, type ReplyInput } from './pipeline/reply.js';
import { INITIAL_TURN_STATE, reduceTurn, type TurnEffect, type TurnMachineConfig, type TurnMachineEvent } from './pipeline/turn-state.js';
import type { ChatMessage, LlmProvider, SttProvider, SttResult, SttStream, StreamingSttProvider, TtsProvider } from './providers/types.js';
import { contourOf, prosodyOf } from '../media/prosody.js';
import type { FrameTag } from '../media/pacer.js';

export interface PipelineOptions {
  /** Segment STT (a fallback chain); also the fallback when the streaming socket fails. */
  stt: SttProvider | null;
  /** Streaming STT (EVA_STT=realtime): audio goes up while the person talks; each pause commits it. */
  sttStream?: StreamingSttProvider | null;
  llm: LlmProvider;
  tts: TtsProvider;
  systemPrompt: string;
  historyTurns: number;
  voice?: string;
  language?: string;
  /** Prior messages (a persisted session continuing); a Promise (the database read) is restored when it resolves. */
  history?: ChatMessage[] | Promise<ChatMessage[]>;
  /** Start STT and the LLM at the first silent window, before the end of turn is certain. Default true. */
  speculative?: boolean;
  /** Speculative turns whose STT may be in flight at once. Default 2. */
  speculativeMax?: number;
  /**
   * Silence after which a clearly finished turn is answered (ms from the end of speech); 0 = always wait for
   * the end-of-turn window. Default 120 (pipeline/eou.ts says why).
   */
  earlyEndMs?: number;
  /** The end-of-turn window when the predictor has no opinion (EVA_VAD_EOU_MS). Default 480. */
  fallbackMs?: number;
  /** The longest a clearly unfinished turn waits (EVA_MAX_EOU_MS). Default 1000. */
  maxEndMs?: number;
  now?: () => number;
  /** Told about every finished turn (persistence, metrics); `heard` is what was played of an interrupted reply. */
  onTurnDone?(turn: ReplyTurn, outcome: TurnOutcome, heard?: string): void;
  onBargeIn?(): void;
  /** Each STT request (a segment transcription or a streaming commit); cloud STT bills per request. */
  onSttRequest?(speculative: boolean): void;
  /** Each end-of-turn decision that answered a turn (metrics by class). */
  onEndOfTurn?(verdict: EouVerdict | null, early: boolean, eouMs: number): void;
}

export type TurnOutcome = 'done' | 'interrupted' | 'failed' | 'discarded';

export function createPipelineAgent(opts: PipelineOptions, ctx: AgentContext): Agent {
  const conversation = new Conversation(opts.systemPrompt, opts.historyTurns, Array.isArray(opts.history) ? opts.history : []);
  if (opts.history instanceof Promise) void opts.history.then((earlier) => conversation.restore(earlier));
  const echo = opts.stt || opts.sttStream ? null : createEchoAgent(ctx);
  const machine: TurnMachineConfig = {
    eou: {
      ...DEFAULT_EOU_CONFIG,
      finishedMs: opts.earlyEndMs ?? DEFAULT_EOU_CONFIG.finishedMs,
      likelyMs: Math.max(opts.earlyEndMs ?? 0, DEFAULT_EOU_CONFIG.likelyMs),
      fallbackMs: opts.fallbackMs ?? DEFAULT_EOU_CONFIG.fallbackMs,
      maxMs: opts.maxEndMs ?? DEFAULT_EOU_CONFIG.maxMs,
    },
    speculativeMax: echo || opts.speculative === false ? 0 : (opts.speculativeMax ?? 2),
  };
  machine.eou.likelyMs = Math.min(machine.eou.likelyMs, machine.eou.fallbackMs);
  const now = opts.now ?? (() => performance.now());
  let state = INITIAL_TURN_STATE;
  const turns = new Map<number, ReplyTurn>();
  let lastPlayed: FrameTag | null = null;
  let warnedNoStt = false;
  /** The spoken segments of the last replies that ended, for a client's later truncate (a few: bounded). */
  const recentSegments: ReplyTurn['segments'][] = [];
  const remember = (turn: ReplyTurn): void => {
    recentSegments.push(turn.segments);
    if (recentSegments.length > 4) recentSegments.shift();
  };

  const replyDeps: ConstructorParameters<typeof ReplyTurn>[1] = {
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

  // ---- streaming STT: one socket per call, one commit per pause ---------------------------------------------
  let stream: SttStream | null = null;
  /** This turn's committed pieces, in order (each resolves with its own text). */
  let pieces: Promise<SttResult>[] = [];
  /** Texts of this turn's pieces that have resolved, in order, for partials. */
  let pieceTexts: string[] = [];
  let pushedSinceCommit = false;

  function openStream(): SttStream | null {
    if (!opts.sttStream) return null;
    if (stream && !stream.failed) return stream;
    stream?.close();
    try {
      stream = opts.sttStream.openStream({ signal: ctx.signal, language: opts.language });
    } catch (err) {
      ctx.log.warn('streaming STT: could not open a stream; using segment STT', { err: (err as Error).message });
      stream = null;
      return null;
    }
    const s = stream;
    s.onPartial = (text) => {
      if (stream !== s) return;
      dispatch({ type: 'partial', at: now(), text: [...pieceTexts, text].join(' ').trim() });
    };
    return s;
  }

  /** Commit what was streamed since the last commit (if anything) and return this turn's pieces so far. */
  function commitPiece(speculative: boolean): Promise<SttResult>[] | null {
    if (!stream || stream.failed) return null;
    if (pushedSinceCommit) {
      pushedSinceCommit = false;
      opts.onSttRequest?.(speculative);
      const index = pieces.length;
      const p = stream.commit();
      p.then(
        (r) => (pieceTexts[index] = r.text.trim()),
        () => undefined,
      );
      pieces.push(p);
    }
    return pieces.slice();
  }

  /** How a turn gets its transcript: the streamed pieces when the socket is up, else the segment STT. */
  function transcriber(pcm16k: Int16Array, speculative: boolean): ReplyInput {
    const streamed = commitPiece(speculative);
    const segment = async (signal: AbortSignal): Promise<SttResult> => {
      if (!opts.stt) throw new Error('streaming STT failed and no segment STT is configured');
      opts.onSttRequest?.(speculative);
      return opts.stt.transcribe(pcm16k, { signal, language: opts.language });
    };
    if (!streamed || streamed.length === 0) return { kind: 'audio', pcm16k, transcribe: segment };
    return {
      kind: 'audio',
      pcm16k,
      transcribe: async (signal) => {
        try {
          const results = await Promise.all(streamed);
          return { text: results.map((r) => r.text.trim()).filter(Boolean).join(' ') };
        } catch (err) {
          if (isAbort(err) || signal.aborted) throw err;
          ctx.log.warn('streaming STT failed mid-turn; transcribing the segment instead', { err: (err as Error).message });
          return segment(signal);
        }
      },
    };
  }

  // ---- the reducer's shell ----------------------------------------------------------------------------------
  function settle(turn: ReplyTurn, outcome: TurnOutcome, heard?: string): void {
    try {
      opts.onTurnDone?.(turn, outcome, heard);
    } catch (err) {
      ctx.log.warn('onTurnDone failed', { err });
    }
  }

  function dispatch(ev: TurnMachineEvent, audio?: Int16Array): void {
    const step = reduceTurn(state, ev, machine);
    state = step.state;
    for (const eff of step.effects) runEffect(eff, audio);
  }

  function start(id: number, input: ReplyInput, info: { speculative: boolean; speechEndAt: number; eouMs?: number }): ReplyTurn {
    const turn = new ReplyTurn(id, replyDeps, info);
    turns.set(id, turn);
    if (info.speculative) {
      turn.onTranscript = (text) => dispatch({ type: 'transcript', at: now(), id, text });
    }
    if (info.speculative && input.kind === 'audio' && input.transcribe) {
      const transcribe = input.transcribe;
      input = {
        ...input,
        transcribe: (signal) => {
          const p = transcribe(signal);
          p.then(
            () => dispatch({ type: 'stt_settled', at: now(), id }),
            () => dispatch({ type: 'stt_settled', at: now(), id }),
          );
          return p;
        },
      };
    }
    void turn.run(input).then(() => {
      if (turn.aborted) return; // barge-in / discard: settled by whoever aborted it
      if (turn.failed) settle(turn, 'failed');
      maybeFinish(turn);
    });
    return turn;
  }

  function runEffect(eff: TurnEffect, audio?: Int16Array): void {
    switch (eff.type) {
      case 'speculate':
        start(eff.id, transcriber(audio!, true), { speculative: true, speechEndAt: eff.speechEndAt });
        return;
      case 'commit': {
        const turn = turns.get(eff.id);
        if (!turn) return;
        turn.commit({ speechEndAt: eff.speechEndAt, eouMs: eff.eouMs });
        if (eff.verdict) turn.eou = { cls: eff.verdict.cls, reason: eff.verdict.reason, early: eff.early };
        ctx.log.debug('end of turn', { turn: eff.id, early: eff.early, eouMs: Math.round(eff.eouMs), cls: eff.verdict?.cls, reason: eff.verdict?.reason });
        opts.onEndOfTurn?.(eff.verdict, eff.early, eff.eouMs);
        ctx.emit({ type: 'state', state: 'thinking' });
        maybeFinish(turn);
        return;
      }
      case 'start_audio': {
        opts.onEndOfTurn?.(null, false, eff.eouMs);
        if (echo) {
          if (!warnedNoStt) {
            warnedNoStt = true;
            ctx.emit({ type: 'error', code: 'no_stt', message: 'no speech-to-text provider is configured (set GROQ_API_KEY or EVA_STT_URL); echoing your audio instead. Typed messages get spoken answers.' });
          }
          // One turn counter for echoed and typed turns, so their events never share a number.
          echo.onEndOfTurn(audio!, { turn: eff.id, speechEndAt: eff.speechEndAt, eouMs: eff.eouMs });
          dispatch({ type: 'finished', at: now(), id: eff.id });
          return;
        }
        start(eff.id, transcriber(audio!, false), { speculative: false, speechEndAt: eff.speechEndAt, eouMs: eff.eouMs });
        ctx.emit({ type: 'state', state: 'thinking' });
        return;
      }
      case 'start_text':
        throw new Error('start_text is run by onText');
      case 'discard': {
        const turn = turns.get(eff.id);
        turns.delete(eff.id);
        if (!turn) return;
        turn.abort();
        settle(turn, 'discarded');
        return;
      }
      case 'retract':
        stop(eff.id, 'retracted');
        ctx.emit({ type: 'state', state: 'listening' });
        return;
      case 'stop':
        stop(eff.id, eff.reason);
        return;
      case 'extend':
        ctx.extendTurn();
        return;
      case 'split':
        ctx.splitTurn?.();
        return;
      default: {
        const never: never = eff;
        throw new Error(`unhandled turn effect ${JSON.stringify(never)}`);
      }
    }
  }

  /** `retracted`: a false cut-off; the whole turn is answered at its real end, so none of this one is kept. */
  function stop(id: number, reason: 'interrupted' | 'superseded' | 'retracted'): void {
    const turn = turns.get(id);
    turns.delete(id);
    if (!turn) return;
    const wasPlaying = !turn.finished;
    turn.abort();
    if (wasPlaying) ctx.out.clear();
    if (reason === 'retracted') {
      ctx.emit({ type: 'interrupted', turn: turn.turn, heard: '' });
      settle(turn, 'discarded');
      return;
    }
    if (turn.finished) return; // played out already; its history was written then
    remember(turn);
    const played = lastPlayed && turn.segments.some((s) => s.id === lastPlayed!.segment) ? lastPlayed : null;
    const heard = heardText(turn.segments, played);
    if (turn.transcript) {
      conversation.add('user', turn.transcript);
      if (heard) conversation.add('assistant', heard);
    }
    if (reason === 'interrupted') ctx.emit({ type: 'interrupted', turn: turn.turn, heard });
    settle(turn, 'interrupted', heard);
  }

  /**
   * A committed turn that has said everything: write it to the history. An early answer stays open (it may yet
   * be retracted) until its end of turn comes.
   */
  function maybeFinish(turn: ReplyTurn): void {
    if (state.current !== turn.turn || !turn.done || !turn.isCommitted || ctx.out.speaking || turn.finished) return;
    if (!turn.talking) emitMetrics(turn);
    if (state.early === turn.turn) return;
    turn.finished = true;
    turns.delete(turn.turn);
    remember(turn);
    dispatch({ type: 'finished', at: now(), id: turn.turn });
    if (!turn.failed && turn.transcript && turn.text.trim()) {
      conversation.add('user', turn.transcript);
      conversation.add('assistant', turn.text.trim());
      settle(turn, 'done');
    }
    ctx.emit({ type: 'state', state: 'listening' });
  }

  function emitMetrics(turn: ReplyTurn): void {
    if (turn.metricsSent) return;
    turn.metricsSent = true;
    ctx.emit({ type: 'metrics', turn: turn.turn, ...turn.times, ...(turn.eou ? { eou_class: turn.eou.cls, eou_early: turn.eou.early } : {}) });
  }

  function currentTurn(): ReplyTurn | undefined {
    return state.current === null ? undefined : turns.get(state.current);
  }

  function contourOfPause(audio16k: Int16Array): Contour {
    try {
      // The pause's audio runs 100 ms past the end of speech (call.ts): the prosody module finds the end itself.
      return contourOf(prosodyOf(audio16k));
    } catch (err) {
      ctx.log.warn('prosody failed', { err: (err as Error).message });
      return 'unknown';
    }
  }

  return {
    providers: { stt: opts.sttStream?.name ?? opts.stt?.name ?? 'none', llm: opts.llm.name, tts: opts.tts.name },

    onSpeechStart(leadIn16k: Int16Array, _info: SpeechInfo) {
      const s = openStream();
      if (!s) return;
      s.clear(); // whatever was streamed after the last turn's end is not part of this one
      pieces = [];
      pieceTexts = [];
      s.push(leadIn16k);
      pushedSinceCommit = leadIn16k.length > 0;
    },

    onAudio(pcm16k) {
      if (!stream || stream.failed) return;
      stream.push(pcm16k);
      pushedSinceCommit = true;
    },

    onTurnDropped() {
      stream?.clear();
      pushedSinceCommit = false;
      pieces = [];
      pieceTexts = [];
    },

    onPause(audio16k, info: TurnInfo) {
      if (echo) return;
      dispatch({ type: 'pause', at: now(), speechEndAt: info.speechEndAt, contour: contourOfPause(audio16k) }, audio16k);
    },

    onSilence(info: SilenceInfo) {
      if (echo) return;
      dispatch({ type: 'silence', at: now(), silenceMs: info.silenceMs });
    },

    onResume(info) {
      dispatch({ type: 'resume', at: now(), onsetAt: info?.onsetAt });
    },

    onEndOfTurn(audio16k, info) {
      const before = state.current;
      dispatch({ type: 'end_of_turn', at: now(), speechEndAt: info.speechEndAt }, audio16k);
      // An early answer that already played out is written to the history now that it cannot be retracted.
      const turn = before !== null ? turns.get(before) : undefined;
      if (turn && state.current === before) maybeFinish(turn);
      pieces = [];
      pieceTexts = [];
      pushedSinceCommit = false;
    },

    onText(text) {
      const id = state.next;
      const step = reduceTurn(state, { type: 'text', at: now() }, machine);
      state = step.state;
      for (const eff of step.effects) if (eff.type !== 'start_text') runEffect(eff);
      start(id, { kind: 'text', text }, { speculative: false, speechEndAt: now() });
      ctx.emit({ type: 'state', state: 'thinking' });
    },

    onBargeIn() {
      if (!state.contested) opts.onBargeIn?.(); // a contested early answer is retracted, not barged in on
      // Without STT the echo may be playing, or a typed turn's spoken reply: stop whichever it is.
      if (echo && state.current === null) {
        echo.onBargeIn();
        return;
      }
      dispatch({ type: 'barge_in', at: now() });
      ctx.emit({ type: 'state', state: 'listening' });
    },

    onTalkStart(at) {
      const turn = currentTurn();
      if (echo && !turn) {
        echo.onTalkStart?.(at);
        return;
      }
      if (!turn || turn.talking) return;
      turn.talking = true;
      dispatch({ type: 'talking', at, id: turn.turn });
      turn.times.first_audio_ms = Math.round((at - turn.speechEndAt) * 10) / 10;
      ctx.emit({ type: 'state', state: 'speaking' });
      emitMetrics(turn);
    },

    onTalkEnd(at) {
      const turn = currentTurn();
      if (echo && !turn) {
        echo.onTalkEnd?.(at);
        return;
      }
      if (turn) maybeFinish(turn);
    },

    onPlayed(tag) {
      lastPlayed = tag;
      echo?.onPlayed?.(tag);
    },

    configure(update: AgentUpdate) {
      if (update.system !== undefined) conversation.system = update.system;
      if (update.voice !== undefined) replyDeps.voice = update.voice ?? opts.voice;
      if (update.language !== undefined) replyDeps.language = update.language ?? opts.language;
      if (update.speak !== undefined) replyDeps.speak = update.speak;
      if (update.endOfTurnMs !== undefined) {
        machine.eou.fallbackMs = update.endOfTurnMs;
        machine.eou.maxMs = Math.max(machine.eou.maxMs, update.endOfTurnMs);
        machine.eou.likelyMs = Math.min(machine.eou.likelyMs, machine.eou.fallbackMs);
        machine.eou.finishedMs = Math.min(machine.eou.finishedMs, machine.eou.fallbackMs);
      }
    },

    forget(message) {
      return conversation.forget(message.role, message.text);
    },

    truncate(played) {
      const segments = played ? recentSegments.find((segs) => segs.some((seg) => seg.id === played.segment)) : recentSegments.at(-1);
      if (!segments) return undefined;
      const heard = heardText(segments, played);
      conversation.truncateLastAssistant(heard);
      return heard;
    },

    close() {
      for (const turn of turns.values()) turn.abort();
      turns.clear();
      stream?.close();
      stream = null;
      echo?.close();
    },
  };
}
