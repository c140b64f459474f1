// EVA's page: wires the call (call.ts) to the views (ui.ts) and exposes a read-only test hook, `window.eva`.
import { Call, type CallEvent, type CallPhase, type CallStats } from './call.js';
import { pushBounded, type SpurtEvent } from './levels.js';
import type { CallConfig, ClientMessage, EvaState, ServerMessage } from './protocol.js';
import { signalingUrl } from './signaling.js';
import { LatencyView, LogView, MAX_LOG, MeterView, NoticeView, TranscriptView, byId, type LogDir } from './ui.js';

export interface LoggedEvent {
  /** performance.now() when it happened. */
  at: number;
  dir: LogDir;
  /** The message type (`state`, `offer` …), or `note` / `talkspurt` / `unknown` for the page's own entries. */
  type: string;
  msg?: ServerMessage | ClientMessage;
  text: string;
}

export type Connection = 'idle' | CallPhase;

/** A server `error` that did not end the call (no STT, a failed turn): shown as a notice, the call goes on. */
export interface Notice {
  /** performance.now() when it arrived. */
  at: number;
  code: string;
  message: string;
}

export interface EvaHook {
  readonly connection: Connection;
  readonly state: EvaState | null;
  readonly vad: boolean;
  readonly session: string | null;
  readonly providers: { stt: string; llm: string; tts: string } | null;
  /** The error that ended (or refused) the last call; null while a call is fine. */
  readonly error: { code: string; message: string } | null;
  /** A copy of this call's notices, oldest first (the last MAX_LOG; the page shows repeats once, counted). */
  readonly notices: Notice[];
  /** Copies: the last MAX_LOG events, and the current (or last) call's stats. */
  readonly events: LoggedEvent[];
  readonly stats: CallStats | null;
  /** What the current (or last) call still holds: microphone, peer connection, socket … ; [] once released. */
  readonly resources: string[];
  connect(config?: CallConfig): Promise<void>;
  hangup(): void;
  sendText(text: string): boolean;
}

declare global {
  interface Window {
    eva: EvaHook;
  }
}

const ui = {
  button: byId<HTMLButtonElement>('connect'),
  connection: byId('connection'),
  error: byId('error'),
  notices: byId<HTMLUListElement>('notices'),
  errorText: byId('error-text'),
  errorClose: byId<HTMLButtonElement>('error-close'),
  system: byId<HTMLTextAreaElement>('system'),
  voice: byId<HTMLInputElement>('voice'),
  voices: byId<HTMLDataListElement>('voices'),
  state: byId('eva-state'),
  vad: byId('vad'),
  providers: byId('providers'),
  audio: byId<HTMLAudioElement>('remote'),
  form: byId<HTMLFormElement>('text-form'),
  text: byId<HTMLInputElement>('text'),
  send: byId<HTMLButtonElement>('send'),
};
const micMeter = new MeterView(byId('mic-meter'));
const evaMeter = new MeterView(byId('eva-meter'));
const transcript = new TranscriptView(byId<HTMLOListElement>('transcript'));
const latency = new LatencyView(byId<HTMLOListElement>('latency'));
const notices = new NoticeView(ui.notices);
const log = new LogView(byId<HTMLOListElement>('log'), byId('log-count'));

const page = {
  call: null as Call | null,
  connection: 'idle' as Connection,
  state: null as EvaState | null,
  vad: false,
  session: null as string | null,
  providers: null as EvaHook['providers'],
  error: null as EvaHook['error'],
  notices: [] as Notice[],
  events: [] as LoggedEvent[],
  /** The mic's last talkspurt end not yet followed by EVA's audio (for the page's own latency figure). */
  micEndedAt: null as number | null,
};

function record(dir: LogDir, type: string, text: string, msg?: ServerMessage | ClientMessage): void {
  const at = performance.now();
  pushBounded(page.events, msg ? { at, dir, type, msg, text } : { at, dir, type, text }, MAX_LOG);
  log.add(at, dir, text, page.events.length);
}

function showError(code: string, message: string): void {
  page.error = { code, message };
  ui.errorText.textContent = code ? `${message} (${code})` : message;
  ui.error.hidden = false;
}

function showNotice(code: string, message: string): void {
  pushBounded(page.notices, { at: performance.now(), code, message }, MAX_LOG);
  notices.add(code, message);
}

function clearError(): void {
  page.error = null;
  ui.error.hidden = true;
}

function render(): void {
  const c = page.connection;
  const live = c === 'connecting' || c === 'connected';
  ui.button.textContent = c === 'connecting' ? 'Cancel' : c === 'connected' ? 'Hang up' : 'Connect';
  ui.button.classList.toggle('hangup', live);
  ui.connection.textContent = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    connected: 'Connected',
    closed: 'Call ended',
    failed: 'Call failed',
  }[c];
  ui.connection.dataset.connection = c;
  const state = live ? (page.state ?? 'connecting') : 'offline';
  ui.state.textContent = state;
  ui.state.dataset.state = state;
  ui.vad.textContent = page.vad ? 'hears you' : 'not hearing you';
  ui.vad.dataset.on = String(page.vad && live);
  ui.providers.textContent = page.providers && live
    ? `STT ${page.providers.stt} · LLM ${page.providers.llm} · TTS ${page.providers.tts}`
    : '';
  ui.text.disabled = ui.send.disabled = c !== 'connected';
  ui.system.disabled = ui.voice.disabled = live;
}

function summarize(msg: ServerMessage | ClientMessage): string {
  switch (msg.type) {
    case 'offer':
    case 'answer':
      return `${msg.type} (SDP ${msg.sdp.length} B)`;
    case 'candidate':
      return `candidate ${msg.candidate.candidate}`;
    case 'state':
      return `state ${msg.state}`;
    case 'vad':
      return `vad ${msg.speaking ? 'speaking' : 'silent'}`;
    case 'transcript':
      return `transcript #${msg.turn}${msg.final ? '' : ' (interim)'} “${msg.text}”`;
    case 'reply':
      return `reply #${msg.turn} +“${msg.delta}”`;
    case 'reply_end':
      return `reply_end #${msg.turn} “${msg.text}”`;
    case 'interrupted':
      return `interrupted #${msg.turn}, heard “${msg.heard}”`;
    case 'ready':
      return `ready ${msg.session} (STT ${msg.providers.stt}, LLM ${msg.providers.llm}, TTS ${msg.providers.tts})`;
    case 'error':
      return `error ${msg.code}: ${msg.message}`;
    case 'metrics': {
      const { type, turn, ...stages } = msg;
      return `${type} #${turn} ${Object.entries(stages).map(([k, v]) => `${k.replace(/_ms$/, '')} ${Math.round(Number(v))} ms`).join(', ')}`;
    }
    default: {
      const { type, ...rest } = msg;
      return `${type} ${JSON.stringify(rest).slice(0, 200)}`;
    }
  }
}

function onServerMessage(msg: ServerMessage): void {
  switch (msg.type) {
    case 'ready':
      page.session = msg.session;
      page.providers = msg.providers;
      break;
    case 'state':
      page.state = msg.state;
      break;
    case 'vad':
      page.vad = msg.speaking;
      break;
    case 'transcript':
      transcript.userTurn(msg.turn, msg.text, msg.final);
      break;
    case 'reply':
      transcript.replyDelta(msg.turn, msg.delta);
      break;
    case 'reply_end':
      transcript.replyEnd(msg.turn, msg.text);
      break;
    case 'interrupted':
      transcript.interrupted(msg.turn, msg.heard);
      break;
    case 'metrics':
      latency.metrics(msg);
      break;
    case 'error':
      // Before the answer it refuses the offer: the call fails with it (call.ts, `failure` below).
      if (page.call?.stats.answerAt !== null) showNotice(msg.code, msg.message);
      break;
    case 'bye':
    case 'answer':
    case 'candidate':
      break; // handled by the call
  }
  render();
}

function onSpurt(ev: SpurtEvent): void {
  const { spurt } = ev;
  if (spurt.source === 'mic' && ev.type === 'end') page.micEndedAt = spurt.end;
  if (spurt.source === 'remote' && ev.type === 'start' && page.micEndedAt !== null) {
    latency.measured(spurt.start - page.micEndedAt);
    page.micEndedAt = null;
  }
  const text = ev.type === 'start'
    ? `${spurt.source} audio starts`
    : `${spurt.source} audio ends (${Math.round((spurt.end ?? spurt.start) - spurt.start)} ms)`;
  record('local', 'talkspurt', text);
}

function onCallEvent(call: Call, e: CallEvent): void {
  if (call !== page.call) return; // a previous call finishing late
  switch (e.type) {
    case 'received':
      if (e.msg) {
        const notice = e.msg.type === 'error' && call.stats.answerAt !== null;
        record('in', e.msg.type, notice ? `notice ${summarize(e.msg)}` : summarize(e.msg), e.msg);
        onServerMessage(e.msg);
      } else {
        record('in', 'unknown', `unrecognized frame ${e.raw.slice(0, 200)}`);
      }
      break;
    case 'sent':
      record('out', e.msg.type, summarize(e.msg), e.msg);
      break;
    case 'note':
      record('local', 'note', e.text);
      break;
    case 'spurt':
      onSpurt(e.event);
      break;
    case 'failure':
      record('local', 'failure', e.code ? `${e.message} (${e.code})` : e.message);
      showError(e.code ?? '', e.message);
      break;
    case 'phase':
      record('local', 'phase', e.reason ? `call ${e.phase}: ${e.reason}` : `call ${e.phase}`);
      page.connection = e.phase;
      if (call.ended) {
        page.state = null;
        page.vad = false;
        transcript.divider(e.reason ? `Call ended — ${e.reason}` : 'Call ended');
      }
      render();
      break;
  }
}

async function connect(config?: CallConfig): Promise<void> {
  if (page.call && !page.call.ended) return;
  clearError();
  const cfg: CallConfig = config ?? {};
  if (!config) {
    if (ui.system.value.trim()) cfg.system = ui.system.value.trim();
    if (ui.voice.value.trim()) cfg.voice = ui.voice.value.trim();
  }
  Object.assign(page, { connection: 'connecting', state: null, vad: false, session: null, providers: null, micEndedAt: null, notices: [] });
  notices.clear();
  latency.clear();
  transcript.divider('Call started');
  const call: Call = new Call({
    wsUrl: signalingUrl(),
    config: cfg,
    audio: ui.audio,
    onEvent: (e) => onCallEvent(call, e),
    onLevels: (s) => {
      micMeter.set(s.micLevel);
      evaMeter.set(s.remoteLevel);
    },
  });
  page.call = call;
  render();
  await call.start();
}

function hangup(): void {
  page.call?.hangup();
}

function sendText(text: string): boolean {
  const t = text.trim();
  if (!t || !page.call?.sendText(t)) return false;
  transcript.typedTurn(t);
  page.micEndedAt = null; // the reply's audio answers the typed turn, not the last thing said
  return true;
}

ui.button.addEventListener('click', () => {
  if (page.connection === 'connecting' || page.connection === 'connected') hangup();
  else void connect();
});
ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (sendText(ui.text.value)) ui.text.value = '';
});
ui.errorClose.addEventListener('click', clearError);
window.addEventListener('pagehide', hangup);

// The voices the server's TTS offers, as suggestions for the voice field; the page works without them.
fetch('/voices')
  .then((r) => (r.ok ? (r.json() as Promise<{ voices?: { id: string; name: string }[] }>) : null))
  .then((body) => {
    for (const v of body?.voices ?? []) {
      const opt = document.createElement('option');
      opt.value = v.id;
      opt.label = v.name;
      ui.voices.append(opt);
    }
  })
  .catch((err: unknown) => record('local', 'note', `no voice list: ${err instanceof Error ? err.message : String(err)}`));

window.eva = Object.freeze({
  get connection() {
    return page.connection;
  },
  get state() {
    return page.state;
  },
  get vad() {
    return page.vad;
  },
  get session() {
    return page.session;
  },
  get providers() {
    return page.providers;
  },
  get error() {
    return page.error;
  },
  get notices() {
    return structuredClone(page.notices);
  },
  get events() {
    return structuredClone(page.events);
  },
  get stats() {
    return page.call ? structuredClone(page.call.stats) : null;
  },
  get resources() {
    return page.call?.held ?? [];
  },
  connect,
  hangup,
  sendText,
});
render();
