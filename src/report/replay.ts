/**
 * The replay input of the report: what `moe-placer replay --json` writes, a list of placement
 * policies each scored window by window over a sequence of workload windows. Validated with zod;
 * extra fields are ignored, so later versions of the replay output that add fields still read.
 *
 *     { "format": "moe-placer.replay/1", "windows": ["name", ...],
 *       "policies": [ { "name": "eplb", "perWindow": [ { "window": 0, "balancedness": 0.9,
 *         "timeSeconds": 0.01, "interNodeBytes": 1e9, "movedBytes": 0 }, ... ] }, ... ] }
 */
import { z } from 'zod';
import { InputError } from '../errors.js';
import { readJsonFile } from '../presets.js';
import { parseWith } from '../validate.js';

import { REPLAY_FORMAT } from '../replay.js';

export { REPLAY_FORMAT };

const nonNeg = z.number().finite().nonnegative();

export const ReplayWindowSchema = z.object({
  /** Index into `windows`. */
  window: z.number().int().nonnegative(),
  balancedness: z.number().finite().min(0).max(1),
  timeSeconds: nonNeg,
  interNodeBytes: nonNeg,
  /** Expert weight bytes moved to reach this window's placement. */
  movedBytes: nonNeg,
});

export const ReplayPolicySchema = z.object({
  name: z.string().min(1),
  perWindow: z.array(ReplayWindowSchema),
});

export const ReplaySchema = z
  .object({
    format: z.literal(REPLAY_FORMAT),
    /** Window names, in replay order. */
    windows: z.array(z.string()).min(1),
    policies: z.array(ReplayPolicySchema).min(1),
  })
  .superRefine((r, ctx) => {
    r.policies.forEach((p, i) => {
      const seen = new Set<number>();
      p.perWindow.forEach((w, j) => {
        if (w.window >= r.windows.length) {
          ctx.addIssue({ code: 'custom', path: ['policies', i, 'perWindow', j, 'window'], message: `window ${w.window} is out of range: the replay has ${r.windows.length} windows (0..${r.windows.length - 1})` });
        } else if (seen.has(w.window)) {
          ctx.addIssue({ code: 'custom', path: ['policies', i, 'perWindow', j, 'window'], message: `window ${w.window} is listed twice for policy ${p.name}` });
        }
        seen.add(w.window);
      });
    });
  });

export type Replay = z.output<typeof ReplaySchema>;
export type ReplayWindowInput = z.output<typeof ReplayWindowSchema>;

/** Validate a parsed replay document (InputError naming the field, e.g. `replay.policies[0].perWindow[2].balancedness`). */
export function parseReplay(value: unknown, file?: string): Replay {
  return parseWith(ReplaySchema, value, 'replay', file !== undefined ? { file } : {});
}

/** Read and validate a replay JSON file (InputError naming the file and field). */
export function readReplayFile(path: string): Replay {
  const value = readJsonFile(path);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InputError('expected a JSON object (moe-placer replay --json output)', { file: path });
  return parseReplay(value, path);
}
