// The page's end of the `/ws` signaling socket: typed send, parsed receive, one close.
import { parseServerMessage, type ClientMessage, type ServerMessage } from './protocol.js';

export interface SignalingHandlers {
  /** A parsed message, or null with the raw frame for anything the page does not know. */
  message(msg: ServerMessage | null, raw: string): void;
  /** The socket closed (either side); not called after `close()`. */
  closed(code: number, reason: string): void;
}

export function signalingUrl(loc: Location = location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}

export class Signaling {
  private closedByUs = false;

  private constructor(
    private readonly ws: WebSocket,
    handlers: SignalingHandlers,
  ) {
    ws.onmessage = (e) => {
      const raw = typeof e.data === 'string' ? e.data : '';
      handlers.message(parseServerMessage(raw), raw);
    };
    ws.onclose = (e) => {
      if (!this.closedByUs) handlers.closed(e.code, e.reason);
    };
  }

  /** Opens the socket; rejects with a readable error if it does not open within `timeoutMs`. */
  static open(url: string, handlers: SignalingHandlers, timeoutMs = 5000): Promise<Signaling> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const timer = setTimeout(() => {
        ws.close();
        reject(new Error(`signaling: ${url} did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(new Signaling(ws, handlers));
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`signaling: could not connect to ${url}`));
      };
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(msg: ClientMessage): boolean {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Idempotent. Frames already sent (a `hangup`) still go out before the close frame. */
  close(): void {
    if (this.closedByUs) return;
    this.closedByUs = true;
    this.ws.onmessage = null;
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close(1000, 'bye');
  }
}
