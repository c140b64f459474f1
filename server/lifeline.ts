// EVA_EXIT_ON_STDIN_CLOSE=1: EVA's stdin is a lifeline to the process that started it. That process keeps the
// pipe open without writing to it; when it dies, however it dies (SIGKILL included, which no handler sees), the
// kernel closes the pipe's write end, EVA reads end-of-file and drains and exits as it would on SIGTERM. Without
// it, a bench or a test harness killed by a timeout leaves an EVA serving on with no one to stop it (one was found
// up 73 minutes later). Node has no way to ask the kernel for a signal when the parent dies (Linux's
// prctl(PR_SET_PDEATHSIG) is not exposed), and polling the parent's pid would see a reused pid; a pipe's end is
// what esbuild's service process uses for the same thing.
//
// Off by default: an EVA started by a service manager or a shell has a stdin that means nothing (/dev/null reads
// end-of-file at once, a terminal on Ctrl-D). Only the top process watches: a supervisor's workers have no such
// stdin and watch their IPC channel to the supervisor instead (main.ts `disconnect`).

/** Calls `onGone` once, when `stdin` ends or closes or fails; whatever is written to it is read and dropped. */
export function onStdinClose(stdin: NodeJS.ReadableStream, onGone: (why: string) => void): void {
  let gone = false;
  const fire = (why: string): void => {
    if (gone) return;
    gone = true;
    onGone(why);
  };
  const closed = 'stdin closed: the process that started EVA is gone';
  stdin.on('data', () => {});
  stdin.once('end', () => fire(closed));
  stdin.once('close', () => fire(closed));
  stdin.once('error', (err: Error) => fire(`stdin failed (${err.message}): taken as the process that started EVA being gone`));
  stdin.resume();
}
