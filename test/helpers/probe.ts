// What a test does to a ProbeCall beyond its public API (bench/probe-client.ts keeps its peer private).
import type { Test } from 'tap';
import { ProbeCall } from '../../bench/probe-client.js';

/** The parts of werift's DTLS socket (lib/index.mjs `DtlsSocket`) a close_notify needs; werift does not export them. */
interface DtlsSocketInternals {
  dtls: { version: { major: number; minor: number }; epoch: number; recordSequenceNumber: number };
  cipher: { encryptPacket(pkt: { recordLayerHeader: RecordHeader; fragment: Buffer }): { fragment: Buffer } };
  transport: { send(buf: Buffer): Promise<void> };
}
interface RecordHeader {
  contentType: number;
  protocolVersion: { major: number; minor: number };
  epoch: number;
  sequenceNumber: number;
  contentLen: number;
}

const ALERT = 21;
const CLOSE_NOTIFY = Buffer.from([1 /* warning */, 0 /* close_notify */]);

/**
 * What a browser's pc.close() does: send DTLS close_notify, then stop. werift's own pc.close() sends no alert (it
 * just closes its socket), so the record is built here: an encrypted alert in the current epoch, as Chrome sends
 * it. The call's signaling WebSocket stays open, so the server's own reaction (a `bye` on that socket) is seen.
 * `call.close()` later is safe. Resolves with performance.now() when the alert was sent.
 */
export async function closeDtls(call: ProbeCall): Promise<number> {
  const peer = (call as unknown as { peer: { close(): Promise<void>; pc: { dtlsTransports: { dtls?: DtlsSocketInternals }[] } } }).peer;
  let sentAt = 0;
  for (const transport of peer.pc.dtlsTransports) {
    const sock = transport.dtls;
    if (!sock) continue;
    const header: RecordHeader = {
      contentType: ALERT,
      protocolVersion: sock.dtls.version,
      epoch: sock.dtls.epoch,
      sequenceNumber: ++sock.dtls.recordSequenceNumber,
      contentLen: CLOSE_NOTIFY.length,
    };
    const { fragment } = sock.cipher.encryptPacket({ recordLayerHeader: header, fragment: Buffer.from(CLOSE_NOTIFY) });
    const record = Buffer.alloc(13 + fragment.length);
    record.writeUInt8(ALERT, 0);
    record.writeUInt8(header.protocolVersion.major, 1);
    record.writeUInt8(header.protocolVersion.minor, 2);
    record.writeUInt16BE(header.epoch, 3);
    record.writeUIntBE(header.sequenceNumber, 5, 6);
    record.writeUInt16BE(fragment.length, 11);
    fragment.copy(record, 13);
    await sock.transport.send(record);
    sentAt = performance.now();
  }
  // werift's UDP send to an IP address is fire-and-forget: closing the socket in the same tick drops the datagram.
  await new Promise((r) => setTimeout(r, 50));
  await peer.close();
  return sentAt;
}

/**
 * After an attack: `/health` answers `ok`, and a real call from 127.0.0.1 connects, speaks, and hears its echo
 * (the server runs the echo agent). Returns the figures for the test to report.
 */
export async function checkStillServes(
  t: Test,
  eva: { httpUrl: string; wsUrl: string },
  speech: Int16Array,
): Promise<{ healthMs: number; connectMs: number; echoMs: number }> {
  const h0 = performance.now();
  const health = await fetch(`${eva.httpUrl}/health`, { signal: AbortSignal.timeout(10_000) });
  const healthMs = performance.now() - h0;
  t.equal(health.status, 200, '/health answers 200');
  t.equal(((await health.json()) as { status?: string }).status, 'ok', '/health says ok');
  const call = await ProbeCall.connect(eva.wsUrl, { timeoutMs: 20_000 });
  t.teardown(() => call.close());
  const sent = await call.play(speech);
  const deadline = performance.now() + 10_000;
  while (performance.now() < deadline && call.audibleMs(sent.lastVoicedAt) < 200) await new Promise((r) => setTimeout(r, 50));
  const echoMs = call.audibleMs(sent.lastVoicedAt);
  t.ok(echoMs >= 200, `a new call connects and hears its echo (${echoMs} ms audible)`);
  call.hangup();
  await call.close();
  return { healthMs, connectMs: call.connectMs, echoMs };
}
