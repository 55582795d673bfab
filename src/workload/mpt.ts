/**
 * The project's canonical trace format, `mpt` ("moe-placer trace"), and its JSON-lines text form
 * `mpt-jsonl`. Full description: docs/trace-format.md.
 *
 * Binary layout (all integers little-endian; the whole file may be gzipped, detected by 1f 8b):
 *
 *     "MPT1"                      4 bytes magic
 *     u32 H                       header length in bytes
 *     H bytes                     UTF-8 JSON header (below)
 *     chunk*                      token chunks
 *     u32 0                       end marker (a chunk of 0 tokens), then end of file
 *
 *     chunk (n >= 1 tokens):
 *       u32 n
 *       u32[n]  request           request id of each token, < numRequests
 *       i32[n]  rank              only when header.hasRank; -1 = not recorded
 *       f32[n]  weight            only when header.hasWeight; finite, >= 0
 *       L times: ids[n*k]         layer l's expert ids, token-major, gate order;
 *                                 u8 when header.idBytes = 1 (E <= 256), else u16
 *
 *     header: {"format":"moe-placer.trace","version":1,"numLayers":L,"numExperts":E,"topK":k,
 *              "idBytes":1|2,"hasRank":bool,"hasWeight":bool,"numTokens":T|null,"numRequests":R,
 *              "model"?:name,"moeLayerIds"?:[..]}
 *
 * `numTokens` lets the reader allocate the `[L][T*k]` arrays once; a writer that streams without
 * knowing T writes null and the reader grows its arrays geometrically. The end marker tells a
 * complete file from one truncated at a chunk boundary.
 *
 * JSON-lines form (for small hand-written traces), one token per line, blank lines ignored:
 *
 *     {"request":0,"rank":3,"weight":1,"experts":[[..k ids of MoE layer 0..],[..layer 1..],..]}
 *
 * `experts` is required ([L][k]); `request` (non-negative integer; ids are renumbered 0.. in order
 * of first appearance), `rank` (integer >= -1) and `weight` (finite, >= 0) are optional. A line
 * without `request` is a request of its own. Other keys are rejected.
 */
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { endianness } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { InputError } from '../errors.js';
import type { Model } from '../schemas.js';
import type { Trace } from '../types.js';
import { IdChecker, TraceBuilder } from './builder.js';
import { fsError, parseJson } from './io.js';

export const MPT_MAGIC = 'MPT1';
export const MPT_FORMAT = 'moe-placer.trace';
export const MPT_VERSION = 1;

/** The JSON header of an `mpt` file. */
export interface MptHeader {
  format: typeof MPT_FORMAT;
  version: number;
  numLayers: number;
  numExperts: number;
  topK: number;
  idBytes: 1 | 2;
  hasRank: boolean;
  hasWeight: boolean;
  numTokens: number | null;
  numRequests: number;
  model?: string;
  moeLayerIds?: number[];
}

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new Error('the mpt trace format needs a little-endian host');
}

type Target = { length: number; set(src: ArrayLike<number>, offset?: number): void };

enum Stage {
  Magic,
  Header,
  Count,
  Request,
  Rank,
  Weight,
  Ids,
  End,
}

const STAGE_NAMES = ['magic', 'header', 'count', 'request ids', 'rank', 'weight', 'ids', 'end'];

/**
 * One decoded, validated chunk of tokens handed to a streaming consumer (`MptParser`'s `onChunk`).
 * The arrays are views into buffers the parser reuses for the next chunk: valid only during the call.
 */
export interface MptChunk {
  /** Index of the chunk's first token in the whole trace. */
  first: number;
  /** Tokens n in the chunk. */
  n: number;
  /** [n] request ids. */
  request: Uint32Array;
  /** [n] recorded ranks, -1 = none. */
  rank: Int32Array;
  /** [n] weights, or null = every token weighs 1. */
  weight: Float32Array | null;
  /** [L] of [n*k] expert ids, token-major, gate order. */
  experts: Uint16Array[];
}

/**
 * Push parser of the binary form: feed decompressed chunks with `push`, then `finish`. Bytes are
 * copied straight into the trace arrays (no per-token work besides validation of each chunk).
 *
 * Streaming mode (`onChunk` given): every validated chunk is handed to `onChunk` and its storage
 * reused for the next one, so memory stays at one chunk whatever the trace length; end with
 * `end()` (the checks of `finish` without building a trace).
 */
export class MptParser {
  private stage = Stage.Magic;
  private target: Target;
  private fill = 0;
  private readonly small = Buffer.alloc(8);
  private headerBuf: Buffer | null = null;
  header: MptHeader | null = null;
  private builder: TraceBuilder | null = null;
  private checker: IdChecker | null = null;
  /** tokens of the current chunk and its first token index */
  private n = 0;
  private start = 0;
  private layer = 0;
  private chunkNo = 0;
  private offset = 0;
  /** tokens of the complete chunks read so far */
  private tokens = 0;
  readonly notes: string[] = [];

  /**
   * @param maxContentBytes upper bound on the decompressed size (raw size for plain files), used
   *   to reject a header whose numTokens cannot fit before allocating for it.
   */
  constructor(
    readonly file: string,
    readonly model: Model,
    readonly maxContentBytes = Infinity,
    private readonly onChunk?: (chunk: MptChunk) => void,
  ) {
    assertLittleEndian();
    this.target = this.small;
  }

  private fail(msg: string, field?: string): never {
    throw new InputError(msg, { file: this.file, field });
  }

  push(buf: Uint8Array): void {
    let off = 0;
    const len = buf.length;
    while (off < len) {
      if (this.stage === Stage.End) this.fail(`${len - off} bytes of trailing data after the end marker (at byte ${this.offset + off})`);
      const need = this.target.length - this.fill;
      const take = need < len - off ? need : len - off;
      this.target.set(buf.subarray(off, off + take), this.fill);
      this.fill += take;
      off += take;
      if (this.fill === this.target.length) this.advance();
    }
    this.offset += len;
  }

  private expect(target: Target, stage: Stage): void {
    this.target = target;
    this.fill = 0;
    this.stage = stage;
  }

  private bytesOf(a: Uint32Array | Int32Array | Float32Array | Uint16Array, from: number, count: number): Uint8Array {
    const bpe = a.BYTES_PER_ELEMENT;
    return new Uint8Array(a.buffer, a.byteOffset + from * bpe, count * bpe);
  }

  private advance(): void {
    switch (this.stage) {
      case Stage.Magic: {
        if (this.small.toString('latin1', 0, 4) !== MPT_MAGIC) this.fail('not an mpt trace (bad magic)');
        const h = this.small.readUInt32LE(4);
        if (h === 0 || h > 1 << 24) this.fail(`implausible header length ${h}`, 'header');
        this.headerBuf = Buffer.alloc(h);
        this.expect(this.headerBuf, Stage.Header);
        return;
      }
      case Stage.Header: {
        this.header = this.checkHeader(parseJson(this.headerBuf!.toString('utf8'), this.file));
        this.headerBuf = null;
        const h = this.header;
        const perToken = 4 + (h.hasRank ? 4 : 0) + (h.hasWeight ? 4 : 0) + h.numLayers * h.topK * h.idBytes;
        // Only a guard against absurd allocations; a slightly short file is reported precisely at its end.
        if (h.numTokens !== null && h.numTokens * perToken > 2 * this.maxContentBytes + (1 << 20)) {
          this.fail(`header says ${h.numTokens} tokens (${perToken} bytes each), far more than the file can hold`, 'header.numTokens');
        }
        // streaming: storage for one chunk only (grown to the largest chunk)
        const cap = this.onChunk ? Math.min(h.numTokens ?? 1 << 14, 1 << 14) : (h.numTokens ?? 1 << 14);
        this.builder = new TraceBuilder(h.numLayers, h.numExperts, h.topK, { weight: h.hasWeight, capacity: Math.max(1, cap) });
        this.checker = new IdChecker(h.numExperts, h.topK);
        this.expect(this.small.subarray(0, 4), Stage.Count);
        return;
      }
      case Stage.Count: {
        const n = this.small.readUInt32LE(0);
        const h = this.header!;
        const b = this.builder!;
        if (n === 0) {
          this.stage = Stage.End;
          this.target = this.small.subarray(0, 0);
          return;
        }
        if (h.numTokens !== null && this.tokens + n > h.numTokens) {
          this.fail(`chunk ${this.chunkNo} brings the token count to ${this.tokens + n}, header says numTokens ${h.numTokens}`, 'numTokens');
        }
        if (this.onChunk) b.numTokens = 0; // reuse the storage of the previous chunk
        this.n = n;
        this.start = b.reserve(n);
        this.expect(this.bytesOf(b.request, this.start, n), Stage.Request);
        return;
      }
      case Stage.Request:
        this.afterRequest();
        return;
      case Stage.Rank:
        this.afterRank();
        return;
      case Stage.Weight:
        this.layer = 0;
        this.expectIds();
        return;
      case Stage.Ids: {
        const b = this.builder!;
        const bad = this.checker!.checkRange(b.experts[this.layer], this.start, this.start + this.n);
        if (bad >= 0) {
          const k = this.header!.topK;
          this.fail(this.checker!.describe(b.experts[this.layer][bad]), `experts[layer ${this.layer}][token ${this.tokenNo(Math.floor(bad / k))}][${bad % k}]`);
        }
        this.layer++;
        if (this.layer < this.header!.numLayers) {
          this.expectIds();
          return;
        }
        this.checkChunk();
        b.commit(this.n);
        if (this.onChunk) {
          const n = this.n;
          const k = this.header!.topK;
          this.onChunk({
            first: this.tokens,
            n,
            request: b.request.subarray(0, n),
            rank: b.rank.subarray(0, n),
            weight: b.weight ? b.weight.subarray(0, n) : null,
            experts: b.experts.map((ex) => ex.subarray(0, n * k)),
          });
        }
        this.tokens += this.n;
        this.chunkNo++;
        this.expect(this.small.subarray(0, 4), Stage.Count);
        return;
      }
      default:
        return;
    }
  }

  private afterRequest(): void {
    if (this.header!.hasRank) this.expect(this.bytesOf(this.builder!.rank, this.start, this.n), Stage.Rank);
    else this.afterRank();
  }

  private afterRank(): void {
    if (this.header!.hasWeight) {
      this.expect(this.bytesOf(this.builder!.weight!, this.start, this.n), Stage.Weight);
    } else {
      this.layer = 0;
      this.expectIds();
    }
  }

  private expectIds(): void {
    const h = this.header!;
    const ex = this.builder!.experts[this.layer];
    const from = this.start * h.topK;
    const count = this.n * h.topK;
    this.expect(h.idBytes === 1 ? ex.subarray(from, from + count) : this.bytesOf(ex, from, count), Stage.Ids);
  }

  /** Index in the whole trace of token `t` of the builder (differs from t when streaming). */
  private tokenNo(t: number): number {
    return this.tokens + (t - this.start);
  }

  /** Request ids below numRequests, ranks >= -1, weights finite and >= 0. */
  private checkChunk(): void {
    const b = this.builder!;
    const h = this.header!;
    const R = h.numRequests;
    const end = this.start + this.n;
    const req = b.request;
    for (let t = this.start; t < end; t++) if (req[t] >= R) this.fail(`request id ${req[t]} >= numRequests ${R}`, `request[token ${this.tokenNo(t)}]`);
    if (h.hasRank) {
      const rank = b.rank;
      for (let t = this.start; t < end; t++) if (rank[t] < -1) this.fail(`rank ${rank[t]} < -1`, `rank[token ${this.tokenNo(t)}]`);
    }
    if (h.hasWeight) {
      const w = b.weight!;
      for (let t = this.start; t < end; t++) {
        const v = w[t];
        if (!(v >= 0 && v < Infinity)) this.fail(`weight ${v} is not finite and non-negative`, `weight[token ${this.tokenNo(t)}]`);
      }
    }
  }

  private checkHeader(raw: unknown): MptHeader {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) this.fail('header must be a JSON object', 'header');
    const h = raw as Record<string, unknown>;
    const f = (name: string): string => `header.${name}`;
    if (h.format !== MPT_FORMAT) this.fail(`expected "${MPT_FORMAT}", got ${JSON.stringify(h.format)}`, f('format'));
    if (h.version !== MPT_VERSION) this.fail(`unsupported version ${JSON.stringify(h.version)} (this reader knows ${MPT_VERSION})`, f('version'));
    const int = (name: string, min: number): number => {
      const v = h[name];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(`must be an integer >= ${min}, got ${JSON.stringify(v)}`, f(name));
      return v as number;
    };
    const bool = (name: string): boolean => {
      if (typeof h[name] !== 'boolean') this.fail(`must be true or false, got ${JSON.stringify(h[name])}`, f(name));
      return h[name] as boolean;
    };
    const L = int('numLayers', 1);
    const E = int('numExperts', 1);
    const k = int('topK', 1);
    const idBytes = int('idBytes', 1);
    if (idBytes !== 1 && idBytes !== 2) this.fail(`must be 1 or 2, got ${idBytes}`, f('idBytes'));
    if (idBytes === 1 && E > 256) this.fail(`1-byte ids cannot hold ${E} experts`, f('idBytes'));
    if (E > 65536) this.fail(`at most 65536 experts, got ${E}`, f('numExperts'));
    const hasRank = bool('hasRank');
    const hasWeight = bool('hasWeight');
    const numTokens = h.numTokens === null || h.numTokens === undefined ? null : int('numTokens', 0);
    const numRequests = int('numRequests', 0);
    const m = this.model;
    if (L !== m.moeLayerIds.length) this.fail(`trace has ${L} MoE layers, model ${m.name} has ${m.moeLayerIds.length}`, f('numLayers'));
    if (E !== m.experts) this.fail(`trace has ${E} experts per layer, model ${m.name} has ${m.experts}`, f('numExperts'));
    if (k !== m.topK) this.fail(`wrong top-k: trace has top-${k}, model ${m.name} has top-${m.topK}`, f('topK'));
    if (typeof h.model === 'string' && h.model !== m.name) this.notes.push(`trace was written for model ${h.model}, read as ${m.name}`);
    if (Array.isArray(h.moeLayerIds) && h.moeLayerIds.join(',') !== m.moeLayerIds.join(',')) {
      this.notes.push(`trace's MoE layer ids differ from model ${m.name}'s; layers are matched by MoE index`);
    }
    return {
      format: MPT_FORMAT,
      version: MPT_VERSION,
      numLayers: L,
      numExperts: E,
      topK: k,
      idBytes: idBytes as 1 | 2,
      hasRank,
      hasWeight,
      numTokens,
      numRequests,
      model: typeof h.model === 'string' ? h.model : undefined,
      moeLayerIds: Array.isArray(h.moeLayerIds) ? (h.moeLayerIds as number[]) : undefined,
    };
  }

  /**
   * After the last chunk has been pushed: check that the file ended at its end marker and held the
   * tokens its header announced. Returns the token count.
   */
  end(): number {
    if (this.stage !== Stage.End) {
      if (this.offset === 0) this.fail('empty file');
      const where =
        this.stage === Stage.Magic || this.stage === Stage.Header
          ? 'inside the header'
          : this.stage === Stage.Count && this.fill === 0
            ? `after ${this.chunkNo} complete chunks (${this.tokens} tokens), before the end marker`
            : `inside chunk ${this.chunkNo} (${STAGE_NAMES[this.stage]}${this.stage === Stage.Ids ? ` of layer ${this.layer}` : ''})`;
      this.fail(`truncated mpt file: ended ${where}, at byte ${this.offset}`);
    }
    const h = this.header!;
    if (h.numTokens !== null && this.tokens !== h.numTokens) this.fail(`file holds ${this.tokens} tokens, header says ${h.numTokens}`, 'header.numTokens');
    return this.tokens;
  }

  /** The trace, after the last chunk has been pushed (not in streaming mode). */
  finish(): Trace {
    if (this.onChunk) throw new Error('MptParser.finish: streaming mode keeps no trace; call end()');
    this.end();
    return this.builder!.finish(this.header!.numRequests);
  }
}

/** Largest finite float32 (weights are stored as float32). */
const FLOAT32_MAX = 3.4028234663852886e38;

/** Keys of a JSON-lines token. */
const JSONL_KEYS = new Set(['request', 'rank', 'weight', 'experts']);

/**
 * Line parser of the JSON-lines form. Tokens go straight into a builder; request ids are
 * renumbered in order of first appearance.
 */
export class MptJsonlParser {
  readonly builder: TraceBuilder;
  private readonly checker: IdChecker;
  private readonly requestOf = new Map<number, number>();
  private numRequests = 0;
  private renumbered = false;
  private sawRank = false;

  constructor(
    readonly file: string,
    readonly model: Model,
  ) {
    this.builder = new TraceBuilder(model.moeLayerIds.length, model.experts, model.topK);
    this.checker = new IdChecker(model.experts, model.topK);
  }

  line(text: string, lineNo: number): void {
    if (text.trim() === '') return;
    const file = this.file;
    const fail = (msg: string, field?: string): never => {
      throw new InputError(msg, { file, line: lineNo, field });
    };
    const obj = parseJson(text, file, lineNo);
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail('each line must be a JSON object (one token)');
    const rec = obj as Record<string, unknown>;
    for (const key of Object.keys(rec)) if (!JSONL_KEYS.has(key)) fail(`unknown field (allowed: request, rank, weight, experts)`, key);
    const { model, builder: b } = this;
    const L = model.moeLayerIds.length;
    const k = model.topK;
    const E = model.experts;
    const t = b.reserve(1);
    // request
    if (rec.request === undefined) {
      b.request[t] = this.numRequests++;
    } else {
      const r = rec.request;
      if (typeof r !== 'number' || !Number.isInteger(r) || r < 0) fail(`must be a non-negative integer, got ${JSON.stringify(r)}`, 'request');
      let id = this.requestOf.get(r as number);
      if (id === undefined) {
        id = this.numRequests++;
        this.requestOf.set(r as number, id);
        if (id !== r) this.renumbered = true;
      }
      b.request[t] = id;
    }
    // rank
    if (rec.rank !== undefined) {
      const r = rec.rank;
      if (typeof r !== 'number' || !Number.isInteger(r) || r < -1 || r > 0x7fffffff) fail(`must be an integer >= -1, got ${JSON.stringify(r)}`, 'rank');
      b.rank[t] = r as number;
      if ((r as number) >= 0) this.sawRank = true;
    } else {
      b.rank[t] = -1;
    }
    // weight
    if (rec.weight !== undefined) {
      const w = rec.weight;
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) fail(`must be a finite non-negative number, got ${JSON.stringify(w)}`, 'weight');
      // Weights are stored as float32: a larger number would become Infinity.
      if (!Number.isFinite(Math.fround(w as number))) fail(`${w} exceeds the largest float32 weight (${FLOAT32_MAX})`, 'weight');
      if (!b.weight) b.enableWeight();
      b.weight![t] = w as number;
    } else if (b.weight) {
      b.weight[t] = 1;
    }
    // experts [L][k]
    const ex = rec.experts;
    if (!Array.isArray(ex)) fail(`must be a list of ${L} layers of ${k} expert ids, got ${ex === undefined ? 'nothing (missing)' : typeof ex}`, 'experts');
    const layers = ex as unknown[];
    if (layers.length !== L) fail(`${layers.length} layers, model ${model.name} has ${L} MoE layers`, 'experts');
    for (let l = 0; l < L; l++) {
      const ids = layers[l];
      if (!Array.isArray(ids)) fail('must be a list of expert ids', `experts[${l}]`);
      const list = ids as unknown[];
      if (list.length !== k) fail(`wrong top-k width: ${list.length} expert ids, model ${model.name} has top-${k}`, `experts[${l}]`);
      const arr = b.experts[l];
      for (let j = 0; j < k; j++) {
        const e = list[j];
        if (typeof e !== 'number' || !Number.isInteger(e)) fail(`expert id must be an integer, got ${JSON.stringify(e)}`, `experts[${l}][${j}]`);
        if ((e as number) < 0 || (e as number) >= E) fail(`expert id ${e} out of range 0..${E - 1}`, `experts[${l}][${j}]`);
        arr[t * k + j] = e as number;
      }
      const bad = this.checker.checkRange(arr, t, t + 1);
      if (bad >= 0) fail(this.checker.describe(arr[bad]), `experts[${l}][${bad - t * k}]`);
    }
    b.commit(1);
  }

  finish(): { trace: Trace; notes: string[] } {
    if (this.builder.numTokens === 0) throw new InputError('no tokens (only blank lines)', { file: this.file });
    const notes: string[] = [];
    if (this.renumbered) notes.push('request ids renumbered 0.. in order of first appearance');
    if (!this.sawRank) notes.push('no source rank recorded');
    return { trace: this.builder.finish(this.numRequests), notes };
  }
}

/** Options of `writeTrace`. */
export interface WriteTraceOptions {
  /** `mpt` (binary) or `mpt-jsonl`; default: `mpt-jsonl` when the path ends in .jsonl or .jsonl.gz. */
  format?: 'mpt' | 'mpt-jsonl';
  /** Gzip the file; default: when the path ends in .gz. */
  gzip?: boolean;
  /** zlib level 1..9 (default 1: fast; routing ids compress little more at higher levels). */
  gzipLevel?: number;
  /** Tokens per binary chunk (default 65536). */
  chunkTokens?: number;
}

/** Check a trace's arrays against its own shape (and a model's, if given) before writing. */
export function checkTrace(trace: Trace, model?: Model | null): void {
  const T = trace.numTokens;
  const k = trace.topK;
  const bad = (msg: string, field: string): never => {
    throw new InputError(msg, { field: `trace.${field}` });
  };
  if (!Number.isInteger(T) || T < 0) bad(`must be a non-negative integer, got ${T}`, 'numTokens');
  if (trace.request.length !== T) bad(`length ${trace.request.length} != numTokens ${T}`, 'request');
  if (trace.rank.length !== T) bad(`length ${trace.rank.length} != numTokens ${T}`, 'rank');
  if (trace.weight && trace.weight.length !== T) bad(`length ${trace.weight.length} != numTokens ${T}`, 'weight');
  if (trace.experts.length !== trace.numLayers) bad(`${trace.experts.length} layers != numLayers ${trace.numLayers}`, 'experts');
  if (trace.numExperts > 65536) bad(`at most 65536 experts, got ${trace.numExperts}`, 'numExperts');
  const checker = new IdChecker(trace.numExperts, k);
  for (let l = 0; l < trace.numLayers; l++) {
    const ex = trace.experts[l];
    if (ex.length !== T * k) bad(`length ${ex.length} != numTokens*topK ${T * k}`, `experts[${l}]`);
    const i = checker.checkRange(ex, 0, T);
    if (i >= 0) bad(checker.describe(ex[i]), `experts[${l}][token ${Math.floor(i / k)}][${i % k}]`);
  }
  for (let t = 0; t < T; t++) {
    if (trace.request[t] >= trace.numRequests) bad(`request id ${trace.request[t]} >= numRequests ${trace.numRequests}`, `request[${t}]`);
    if (trace.rank[t] < -1) bad(`rank ${trace.rank[t]} < -1`, `rank[${t}]`);
    if (trace.weight) {
      const w = trace.weight[t];
      if (!(w >= 0 && w < Infinity)) bad(`weight ${w} is not finite and non-negative`, `weight[${t}]`);
    }
  }
  if (model) {
    if (trace.numLayers !== model.moeLayerIds.length) bad(`${trace.numLayers} != model ${model.name}'s ${model.moeLayerIds.length} MoE layers`, 'numLayers');
    if (trace.numExperts !== model.experts) bad(`${trace.numExperts} != model ${model.name}'s ${model.experts} experts`, 'numExperts');
    if (k !== model.topK) bad(`${k} != model ${model.name}'s top-${model.topK}`, 'topK');
  }
}

/** Header a writer produces for `trace`. */
export function mptHeaderOf(trace: Trace, model?: Model | null): MptHeader {
  let hasRank = false;
  for (let t = 0; t < trace.numTokens; t++) {
    if (trace.rank[t] >= 0) {
      hasRank = true;
      break;
    }
  }
  const h: MptHeader = {
    format: MPT_FORMAT,
    version: MPT_VERSION,
    numLayers: trace.numLayers,
    numExperts: trace.numExperts,
    topK: trace.topK,
    idBytes: trace.numExperts <= 256 ? 1 : 2,
    hasRank,
    hasWeight: trace.weight !== null,
    numTokens: trace.numTokens,
    numRequests: trace.numRequests,
  };
  if (model) {
    h.model = model.name;
    h.moeLayerIds = [...model.moeLayerIds];
  }
  return h;
}

/** The start of an mpt file: magic, header length and the JSON header. */
export function mptPrefixBytes(header: MptHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const pre = Buffer.alloc(8 + json.length);
  pre.write(MPT_MAGIC, 0, 'latin1');
  pre.writeUInt32LE(json.length, 4);
  json.copy(pre, 8);
  return pre;
}

/**
 * The tokens of `trace` as mpt chunks of at most `chunkTokens` tokens (no end marker), laid out as
 * `header` says (rank and weight present or not, 1- or 2-byte ids). Every piece is a fresh copy.
 */
export function* mptChunkBytes(trace: Trace, header: MptHeader, chunkTokens: number): Generator<Uint8Array> {
  const k = trace.topK;
  const view = (a: Uint32Array | Int32Array | Float32Array | Uint16Array, from: number, count: number): Uint8Array =>
    new Uint8Array(a.buffer, a.byteOffset + from * a.BYTES_PER_ELEMENT, count * a.BYTES_PER_ELEMENT);
  for (let start = 0; start < trace.numTokens; start += chunkTokens) {
    const n = Math.min(chunkTokens, trace.numTokens - start);
    const cnt = Buffer.alloc(4);
    cnt.writeUInt32LE(n, 0);
    yield cnt;
    // copies: the stream may hold on to chunks after the generator moves on
    yield view(trace.request, start, n).slice();
    if (header.hasRank) yield view(trace.rank, start, n).slice();
    if (header.hasWeight) yield view(trace.weight!, start, n).slice();
    for (let l = 0; l < trace.numLayers; l++) {
      const ids = trace.experts[l].subarray(start * k, (start + n) * k);
      if (header.idBytes === 1) {
        const out = new Uint8Array(n * k);
        out.set(ids); // ids < 256, checked
        yield out;
      } else {
        yield view(ids, 0, n * k).slice();
      }
    }
  }
}

/** The end marker of an mpt file (a chunk of 0 tokens). */
export const mptEndBytes = (): Buffer => Buffer.alloc(4);

function* mptBytes(trace: Trace, header: MptHeader, chunkTokens: number): Generator<Uint8Array> {
  yield mptPrefixBytes(header);
  yield* mptChunkBytes(trace, header, chunkTokens);
  yield mptEndBytes();
}

function* jsonlBytes(trace: Trace): Generator<Uint8Array> {
  const k = trace.topK;
  const L = trace.numLayers;
  const lines: string[] = [];
  for (let t = 0; t < trace.numTokens; t++) {
    let s = `{"request":${trace.request[t]}`;
    if (trace.rank[t] >= 0) s += `,"rank":${trace.rank[t]}`;
    if (trace.weight) s += `,"weight":${trace.weight[t]}`;
    s += ',"experts":[';
    for (let l = 0; l < L; l++) {
      const ex = trace.experts[l];
      s += l === 0 ? '[' : ',[';
      for (let j = 0; j < k; j++) s += j === 0 ? ex[t * k] : `,${ex[t * k + j]}`;
      s += ']';
    }
    lines.push(`${s}]}\n`);
    if (lines.length === 4096) yield Buffer.from(lines.splice(0).join(''), 'utf8');
  }
  if (lines.length > 0) yield Buffer.from(lines.join(''), 'utf8');
}

/**
 * Write `trace` to `path` in the canonical format (binary `mpt` unless the path ends in .jsonl or
 * .jsonl.gz, gzipped when the path ends in .gz; see `WriteTraceOptions`). The trace is validated
 * first (and checked against `model` when given, whose name and MoE layer ids go in the header).
 * The file appears atomically: it is written next to `path` and renamed, never left half-written.
 * Returns the bytes written.
 */
export async function writeTrace(path: string, trace: Trace, model?: Model | null, opts: WriteTraceOptions = {}): Promise<{ bytes: number }> {
  assertLittleEndian();
  checkTrace(trace, model);
  const format = opts.format ?? (/\.jsonl(\.gz)?$/i.test(path) ? 'mpt-jsonl' : 'mpt');
  const gzip = opts.gzip ?? /\.gz$/i.test(path);
  const chunkTokens = opts.chunkTokens ?? 65536;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new InputError(`must be a positive integer, got ${chunkTokens}`, { field: 'chunkTokens' });
  const gen = format === 'mpt' ? mptBytes(trace, mptHeaderOf(trace, model), chunkTokens) : jsonlBytes(trace);
  const tmp = `${path}.${process.pid}.tmp`;
  const out = createWriteStream(tmp);
  try {
    const src = Readable.from(gen, { objectMode: false });
    if (gzip) await pipeline(src, createGzip({ level: opts.gzipLevel ?? 1 }), out);
    else await pipeline(src, out);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw fsError(path, err);
  }
  return { bytes: out.bytesWritten };
}
