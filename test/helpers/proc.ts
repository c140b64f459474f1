// What Linux's /proc says about a process's threads, for tests that check how EVA set them up.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Nice value of each thread of `pid` (this process by default), by thread id: field 19 of
 * /proc/<pid>/task/<tid>/stat, counted after the command name (which may hold spaces and parentheses).
 */
export function threadNices(pid: number | 'self' = 'self'): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}
