// The browser page and its assets. The assets are open to anyone; with EVA_API_KEY set the page itself asks for
// the key once (the browser's own HTTP Basic prompt: any user name, the key as password) and sets a same-origin
// HttpOnly SameSite=Strict cookie that lets the page's own requests and sockets in with no code of its own.
import { readFile, readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Logger } from '../log.js';
import { admit, type RouteContext } from './context.js';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

type StaticFile = { body: Buffer; type: string };

export async function loadStatic(dir: string, log: Logger): Promise<Map<string, StaticFile>> {
  const files = new Map<string, StaticFile>();
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    log.warn('client page not built; run `npm run build`', { dir });
  }
  for (const name of names) {
    const type = MIME[extname(name)];
    if (type) files.set(`/${name}`, { body: await readFile(join(dir, name)), type });
  }
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return files;
}

export function registerPage(app: TemplatedApp, ctx: RouteContext, files: Map<string, StaticFile>): void {
  for (const [path, file] of files) {
    const isPage = file.type.startsWith('text/html');
    app.get(path, (res, req) => {
      const ok = admit(ctx, res, req, isPage ? 'page' : 'open');
      if (!ok) return;
      // The cookie is renewed on each visit by someone who proved the key (or holds a valid cookie already).
      const cookie = isPage && ctx.access.keyRequired && ok.credential !== 'none' ? ctx.access.cookieHeader(ok.secure) : '';
      res.cork(() => {
        res.writeHeader('Content-Type', file.type).writeHeader('Cache-Control', 'no-cache');
        if (cookie) res.writeHeader('Set-Cookie', cookie);
        if (isPage) res.writeHeader('X-Frame-Options', 'DENY').writeHeader('Referrer-Policy', 'no-referrer');
        res.end(file.body);
      });
    });
  }
}
