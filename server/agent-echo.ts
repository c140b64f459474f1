// The zero-config agent of the foundation: it plays each of the person's turns back to them. With no STT it
// cannot answer in words; it proves the whole audio path (mic → Opus → VAD → turn → Opus → ear) and barge-in.
import type { Agent, AgentContext, TurnInfo } from './agent.js';
import { createResampler } from '../media/resample.js';

export function createEchoAgent(ctx: AgentContext): Agent {
  let turn = 0;
  let pending: { turn: number; info: TurnInfo } | null = null;
  let playing = 0;
  let playedMs = 0;

  async function play(audio16k: Int16Array, info: TurnInfo): Promise<void> {
    const rs = await createResampler(16000, ctx.out.sampleRate);
    try {
      const pcm = rs.process(audio16k);
      const tail = rs.flush();
      if (ctx.signal.aborted || playing !== info.turn) return;
      ctx.out.enqueue(pcm, info.turn);
      ctx.out.enqueue(tail, info.turn);
      ctx.out.flush();
    } finally {
      rs.destroy();
    }
  }

  return {
    providers: { stt: 'none', llm: 'none', tts: 'echo' },
    onEndOfTurn(audio16k, info) {
      turn = info.turn;
      playing = info.turn;
      playedMs = 0;
      pending = { turn: info.turn, info };
      ctx.emit({ type: 'state', state: 'thinking' });
      play(audio16k, info).catch((err: unknown) => {
        ctx.log.error('echo playback failed', { err });
        ctx.emit({ type: 'error', code: 'internal', message: 'echo playback failed' });
      });
    },
    onText(text) {
      turn++;
      // No STT/LLM/TTS in the echo agent: a typed turn is answered in text only.
      ctx.emit({ type: 'reply', turn, delta: text });
      ctx.emit({ type: 'reply_end', turn, text });
    },
    onBargeIn() {
      ctx.emit({ type: 'interrupted', turn: playing, heard: `${Math.round(playedMs)} ms of echo` });
      playing = 0;
      pending = null;
      ctx.emit({ type: 'state', state: 'listening' });
    },
    onTalkStart(at) {
      ctx.emit({ type: 'state', state: 'speaking' });
      if (pending) {
        const { info } = pending;
        ctx.emit({ type: 'metrics', turn: info.turn, eou_ms: round(info.eouMs), first_audio_ms: round(at - info.speechEndAt) });
        pending = null;
      }
    },
    onTalkEnd() {
      ctx.emit({ type: 'state', state: 'listening' });
    },
    onPlayed(tag) {
      if (tag.segment === playing) playedMs = tag.endMs;
    },
    close() {
      playing = 0;
    },
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
