// A call's (or a text session's) conversation: the system prompt plus the last N exchanges. Bounded so a long
// call neither grows memory nor pushes the prompt past the model's context.
import type { ChatMessage } from '../providers/types.js';

export class Conversation {
  private messages: ChatMessage[] = [];

  constructor(
    public system: string,
    /** Most user+assistant pairs kept. */
    readonly maxTurns = 20,
    initial: readonly ChatMessage[] = [],
  ) {
    for (const m of initial) if (m.role !== 'system') this.messages.push({ ...m });
    this.trim();
  }

  /** Earlier messages that arrived after the conversation began (a stored session, read at call start): they go first. */
  restore(earlier: readonly ChatMessage[]): void {
    this.messages.unshift(...earlier.filter((m) => m.role !== 'system').map((m) => ({ ...m })));
    this.trim();
  }

  add(role: 'user' | 'assistant', content: string): void {
    this.messages.push({ role, content });
    this.trim();
  }

  /** Replace the newest assistant message (a barge-in cut the reply short); with no text, drop it. */
  /** Removes the latest message with this role and content (the Realtime API's conversation.item.delete); false if none. */
  forget(role: 'user' | 'assistant', content: string): boolean {
    const text = content.trim();
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i]!;
      if (m.role === role && m.content.trim() === text) {
        this.messages.splice(i, 1);
        return true;
      }
    }
    return false;
  }

  truncateLastAssistant(heard: string): void {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      if (this.messages[i]!.role !== 'assistant') continue;
      if (heard.trim() === '') this.messages.splice(i, 1);
      else this.messages[i] = { role: 'assistant', content: heard };
      return;
    }
  }

  /** The messages for the next request: system prompt, history, and optionally a user turn not yet added. */
  toMessages(pendingUser?: string): ChatMessage[] {
    const out: ChatMessage[] = [{ role: 'system', content: this.system }, ...this.messages];
    if (pendingUser !== undefined) out.push({ role: 'user', content: pendingUser });
    return out;
  }

  get length(): number {
    return this.messages.length;
  }

  private trim(): void {
    const max = this.maxTurns * 2;
    if (this.messages.length > max) this.messages.splice(0, this.messages.length - max);
    // Never start the history with an assistant message: some chat templates reject it.
    while (this.messages[0]?.role === 'assistant') this.messages.shift();
  }
}
