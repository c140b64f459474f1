import t from 'tap';
import { Conversation } from './history.js';

t.test('messages start with the system prompt and keep order', async (t) => {
  const c = new Conversation('be brief');
  c.add('user', 'hi');
  c.add('assistant', 'hello');
  t.same(c.toMessages('how are you'), [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'hello' },
    { role: 'user', content: 'how are you' },
  ]);
});

t.test('history is bounded to the last N exchanges and never starts with the assistant', async (t) => {
  const c = new Conversation('s', 2);
  for (let i = 0; i < 5; i++) {
    c.add('user', `u${i}`);
    c.add('assistant', `a${i}`);
  }
  t.same(c.toMessages().map((m) => m.content), ['s', 'u3', 'a3', 'u4', 'a4']);
  const d = new Conversation('s', 1, [
    { role: 'assistant', content: 'orphan' },
    { role: 'user', content: 'u' },
  ]);
  t.same(d.toMessages().map((m) => m.role), ['system', 'user']);
});

t.test('a barge-in truncates the last assistant message, or drops it when nothing was heard', async (t) => {
  const c = new Conversation('s');
  c.add('user', 'tell me a story');
  c.add('assistant', 'Once upon a time there was a fox. It was clever.');
  c.truncateLastAssistant('Once upon a time');
  t.equal(c.toMessages().at(-1)!.content, 'Once upon a time');
  c.truncateLastAssistant('  ');
  t.same(c.toMessages().map((m) => m.role), ['system', 'user']);
});
