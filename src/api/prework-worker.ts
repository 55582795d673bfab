/**
 * Worker entry of `Prework` (prework.ts): runs the job it is given, then ends. Runs from compiled
 * JS (dist/src/api/prework-worker.js).
 */
import { workerData } from 'node:worker_threads';
import { runPrework, type PreworkJob } from './prework.js';

runPrework(workerData as PreworkJob);
