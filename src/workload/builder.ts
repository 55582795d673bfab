/**
 * Growable typed-array storage for a trace being read: `[T]` request / rank / weight and `[L]` of
 * `[T*k]` expert ids, grown geometrically (x1.5, at least the requested room), never one object
 * per token. Readers write straight into the arrays after `reserve(n)` and then `commit(n)`.
 */
import type { Trace } from '../types.js';

export class TraceBuilder {
  /** Tokens committed so far. */
  numTokens = 0;
  /** Allocated token capacity. */
  capacity: number;
  request: Uint32Array;
  rank: Int32Array;
  weight: Float32Array | null;
  /** [L] of [capacity*k] */
  experts: Uint16Array[];

  constructor(
    readonly numLayers: number,
    readonly numExperts: number,
    readonly topK: number,
    opts: { weight?: boolean; capacity?: number } = {},
  ) {
    this.capacity = Math.max(1, opts.capacity ?? 1024);
    this.request = new Uint32Array(this.capacity);
    this.rank = new Int32Array(this.capacity).fill(-1);
    this.weight = opts.weight ? new Float32Array(this.capacity).fill(1) : null;
    this.experts = [];
    for (let l = 0; l < numLayers; l++) this.experts.push(new Uint16Array(this.capacity * topK));
  }

  /** Make room for `n` more tokens after the committed ones; returns the first free index. */
  reserve(n: number): number {
    const need = this.numTokens + n;
    if (need > this.capacity) this.grow(Math.max(need, Math.ceil(this.capacity * 1.5)));
    return this.numTokens;
  }

  /** Declare `n` more tokens (written after `reserve`) as part of the trace. */
  commit(n: number): void {
    this.numTokens += n;
  }

  /** Start recording weights (all earlier tokens weigh 1). */
  enableWeight(): void {
    if (!this.weight) this.weight = new Float32Array(this.capacity).fill(1);
  }

  private grow(cap: number): void {
    const k = this.topK;
    const n = this.numTokens;
    const req = new Uint32Array(cap);
    req.set(this.request.subarray(0, n));
    this.request = req;
    const rank = new Int32Array(cap).fill(-1);
    rank.set(this.rank.subarray(0, n));
    this.rank = rank;
    if (this.weight) {
      const w = new Float32Array(cap).fill(1);
      w.set(this.weight.subarray(0, n));
      this.weight = w;
    }
    for (let l = 0; l < this.numLayers; l++) {
      const ex = new Uint16Array(cap * k);
      ex.set(this.experts[l].subarray(0, n * k));
      this.experts[l] = ex;
    }
    this.capacity = cap;
  }

  /** The finished trace; arrays are trimmed to the token count (copied only if over-allocated). */
  finish(numRequests: number): Trace {
    const n = this.numTokens;
    const k = this.topK;
    const exact = n === this.capacity;
    return {
      numLayers: this.numLayers,
      numExperts: this.numExperts,
      topK: k,
      numTokens: n,
      numRequests,
      request: exact ? this.request : this.request.slice(0, n),
      rank: exact ? this.rank : this.rank.slice(0, n),
      weight: this.weight ? (exact ? this.weight : this.weight.slice(0, n)) : null,
      experts: this.experts.map((ex) => (exact ? ex : ex.slice(0, n * k))),
    };
  }
}

/**
 * Validates expert-id lists of tokens: each id in [0, E), no id twice within one token's k ids.
 * k = 8 compares a token's ids pairwise in registers; other k use an [E] array of stamps (one
 * stamp per token checked), so a check costs O(k).
 */
export class IdChecker {
  private readonly seen: Int32Array;
  private stamp = 0;
  /** Why the last failed check failed: 'range' (id outside [0, E)) or 'duplicate'. */
  reason: 'range' | 'duplicate' = 'range';

  constructor(
    readonly numExperts: number,
    readonly topK: number,
  ) {
    this.seen = new Int32Array(numExperts);
  }

  /**
   * Check tokens `from .. to` (exclusive) of a `[T*k]` id array. Returns -1 when all are valid,
   * else the flat index `t*k + j` of the first bad id (see `reason`).
   */
  checkRange(ids: Uint16Array, from: number, to: number): number {
    const k = this.topK;
    const E = this.numExperts;
    if (k === 1) {
      for (let i = from; i < to; i++) {
        const e = ids[i];
        if (!(e >= 0 && e < E)) {
          this.reason = 'range';
          return i;
        }
      }
      return -1;
    }
    if (k === 8) {
      const bad = checkRange8(ids, from, to, E);
      if (bad < 0) return -1;
      // locate the first bad id of the token precisely (rare path)
      const t = Math.floor(bad / 8);
      return this.checkRangeStamped(ids, t, t + 1);
    }
    return this.checkRangeStamped(ids, from, to);
  }

  private checkRangeStamped(ids: Uint16Array, from: number, to: number): number {
    const k = this.topK;
    const E = this.numExperts;
    const seen = this.seen;
    if (this.stamp > 0x3fffffff - (to - from)) {
      seen.fill(0);
      this.stamp = 0;
    }
    let stamp = this.stamp;
    for (let t = from; t < to; t++) {
      stamp++;
      const base = t * k;
      for (let j = 0; j < k; j++) {
        const e = ids[base + j];
        if (!(e >= 0 && e < E)) {
          this.stamp = stamp;
          this.reason = 'range';
          return base + j;
        }
        if (seen[e] === stamp) {
          this.stamp = stamp;
          this.reason = 'duplicate';
          return base + j;
        }
        seen[e] = stamp;
      }
    }
    this.stamp = stamp;
    return -1;
  }

  /** Human-readable reason for id `e` failing the last check. */
  describe(e: number): string {
    return this.reason === 'range'
      ? `expert id ${e} out of range 0..${this.numExperts - 1}`
      : `expert id ${e} listed twice in one token`;
  }
}

/**
 * k = 8 (DeepSeek-V3, Kimi-K2, Qwen3): the 8 ids of a token in registers, range checked and
 * compared pairwise (28 comparisons, no memory traffic). Returns the flat index of the first id of
 * the first bad token, or -1.
 */
function checkRange8(ids: Uint16Array, from: number, to: number, E: number): number {
  for (let t = from; t < to; t++) {
    const b = t * 8;
    const a0 = ids[b];
    const a1 = ids[b + 1];
    const a2 = ids[b + 2];
    const a3 = ids[b + 3];
    const a4 = ids[b + 4];
    const a5 = ids[b + 5];
    const a6 = ids[b + 6];
    const a7 = ids[b + 7];
    if (a0 >= E || a1 >= E || a2 >= E || a3 >= E || a4 >= E || a5 >= E || a6 >= E || a7 >= E) return b;
    if (
      a0 === a1 || a0 === a2 || a0 === a3 || a0 === a4 || a0 === a5 || a0 === a6 || a0 === a7 ||
      a1 === a2 || a1 === a3 || a1 === a4 || a1 === a5 || a1 === a6 || a1 === a7 ||
      a2 === a3 || a2 === a4 || a2 === a5 || a2 === a6 || a2 === a7 ||
      a3 === a4 || a3 === a5 || a3 === a6 || a3 === a7 ||
      a4 === a5 || a4 === a6 || a4 === a7 ||
      a5 === a6 || a5 === a7 ||
      a6 === a7
    ) {
      return b;
    }
  }
  return -1;
}
