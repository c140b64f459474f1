// Launches Debian's Chromium (/usr/bin/chromium) through playwright-core for browser tests, with a fake
// microphone that plays a WAV file in a loop. Never downloads a browser.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.EVA_CHROMIUM ?? '/usr/bin/chromium';

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** The page's console messages and uncaught errors, for a failing test to print. */
  logs: string[];
}

export async function launchChromium(
  t: { teardown(fn: () => unknown): void },
  opts: { fakeAudio: string; args?: string[] },
): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: the browser end-to-end test needs it. ` +
        'Install Debian\'s package (`apt-get install -y chromium`, as .ci/run does) or set EVA_CHROMIUM to a Chromium binary.',
    );
  }
  if (!existsSync(opts.fakeAudio)) throw new Error(`fake microphone file ${opts.fakeAudio} is missing (test/fixtures/make-fixtures.sh makes it)`);
  const dir = await mkdtemp(join(tmpdir(), 'eva-chromium-'));
  let context: BrowserContext | undefined;
  t.teardown(async () => {
    await context?.close().catch((err: unknown) => console.error('closing Chromium failed:', err));
    await rm(dir, { recursive: true, force: true });
  });
  context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${opts.fakeAudio}`,
      '--autoplay-policy=no-user-gesture-required',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      ...(opts.args ?? []),
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const logs: string[] = [];
  const keep = (line: string): void => {
    logs.push(line);
    if (logs.length > 200) logs.shift();
  };
  page.on('console', (m) => keep(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (err) => keep(`pageerror: ${err.stack ?? err.message}`));
  return { context, page, logs };
}
