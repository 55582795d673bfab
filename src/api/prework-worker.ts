/**
 * Worker entry of `Prework` (prework.ts): runs the job it is given, then ends. Runs from compiled
 * JS (dist/src/api/prework-worker.js).
 *
 * The worker's thread runs at the lowest priority where the system allows it (Linux: a thread's
 * own nice value): it takes a CPU the solve leaves idle, but yields to the solve and to the
 * compiler threads the solve's code waits for (on 2 CPUs at normal priority it slowed the solve
 * by a third).
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { workerData } from 'node:worker_threads';
import { runPrework, type PreworkJob } from './prework.js';

try {
  // /proc/thread-self -> /proc/<pid>/task/<tid>: this thread's id, whose priority setPriority sets.
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19);
} catch {
  // no per-thread priority here: the worker runs at the normal one
}
runPrework(workerData as PreworkJob);
