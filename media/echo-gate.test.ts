import t from 'tap';
import { EchoGate } from './echo-gate.js';
import { rmsOf } from './level.js';

t.test('a mic window far below EVA\'s recent output is echo; the person\'s own voice is not', async (t) => {
  const g = new EchoGate();
  t.notOk(g.isEcho(100, 1000), 'while EVA is quiet nothing is echo');
  for (let at = 1000; at <= 1200; at += 20) g.output(at === 1100 ? 8000 : 2000, at);
  t.equal(g.level(1200), 8000, 'the loudest recent frame');
  t.ok(g.isEcho(800, 1200), 'EVA at -20 dB (residual echo) is echo');
  t.notOk(g.isEcho(2500, 1200), 'a voice within 15 dB of her loudest frame is the person');
  t.ok(g.isEcho(300, 1450), 'her frames inside the window still count');
  t.equal(g.level(1200 + 301), 0);
  t.notOk(g.isEcho(300, 1200 + 301), 'once all her frames are older than the window, the gate opens');
});

t.test('rmsOf', async (t) => {
  t.equal(rmsOf(new Int16Array([3, -3, 3, -3])), 3);
  t.equal(rmsOf(new Int16Array(0)), 0);
});
