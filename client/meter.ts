// Reads the level of a MediaStream with a WebAudio AnalyserNode. The analyser is not connected onward: Chrome
// pulls an unconnected AnalyserNode by itself, and playback stays with the <audio> element (no double output).
import { rms } from './levels.js';

/**
 * 1024 samples = 21 ms at 48 kHz: about one poll period (20 ms), so consecutive reads see every sample once
 * and an onset shows up within one poll.
 */
const WINDOW = 1024;

export class LevelProbe {
  private readonly source: MediaStreamAudioSourceNode;
  private readonly analyser: AnalyserNode;
  private readonly block = new Float32Array(WINDOW);

  constructor(ctx: AudioContext, stream: MediaStream) {
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = WINDOW;
    this.source.connect(this.analyser);
  }

  /** Linear RMS of the latest window. */
  read(): number {
    this.analyser.getFloatTimeDomainData(this.block);
    return rms(this.block);
  }

  close(): void {
    this.source.disconnect();
    this.analyser.disconnect();
  }
}
