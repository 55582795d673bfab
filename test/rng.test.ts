import { describe, expect, it } from 'vitest';
import { deriveSeed, Rng } from '../src/rng.js';

describe('Rng', () => {
  // Values of the generator before its state went int32 (sfc32 on uint32 words): the streams,
  // and so every seeded plan, are unchanged.
  const REFERENCE: Record<number, { u32: number[]; uni: number[]; after: number; fork: number; int: number }> = {
    0: { u32: [4205396811, 3543653536, 1222415357, 3047368389], uni: [0.09012765903025866, 0.5834812228567898, 0.17115427274256945], after: 3083645593, fork: 1450646927, int: 239 },
    42: { u32: [1028872839, 2516511472, 400437680, 853279530], uni: [0.44710162095725536, 0.8355816230177879, 0.8486008339095861], after: 1996320479, fork: 3942251315, int: 991 },
    4294967295: { u32: [1413747962, 91561161, 3282502067, 2190738929], uni: [0.8727518387604505, 0.8949119262397289, 0.4535134914331138], after: 3381085414, fork: 1895665076, int: 61 },
  };

  it('yields the reference streams of nextU32, fillUniform, fork and int', () => {
    for (const [seed, ref] of Object.entries(REFERENCE)) {
      const r = new Rng(Number(seed));
      expect(Array.from({ length: 4 }, () => r.nextU32())).toEqual(ref.u32);
      expect(Array.from(r.fillUniform(new Float64Array(3)))).toEqual(ref.uni);
      const f = r.fork(7);
      expect(r.nextU32()).toBe(ref.after);
      expect(f.nextU32()).toBe(ref.fork);
      expect(r.int(1000)).toBe(ref.int);
    }
  });

  it('keeps words unsigned 32-bit and uniforms in [0, 1) over a long run', () => {
    const r = new Rng(deriveSeed(7, 3));
    let lo = 1;
    let hi = 0;
    let bad = 0;
    for (let i = 0; i < 100000; i++) {
      const w = r.nextU32();
      if (!(Number.isInteger(w) && w >= 0 && w < 2 ** 32)) bad++;
      const u = r.next();
      lo = Math.min(lo, u);
      hi = Math.max(hi, u);
    }
    expect(bad).toBe(0);
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(hi - lo).toBeGreaterThan(0.999);
  });
});
