/**
 * Streamed I/O of canonical `mpt` traces too large to hold in memory: read a file chunk by chunk
 * (`forEachMptChunk`, memory = one chunk), the per-chunk source and weight of each token
 * (`ChunkScratch`), and write one file from traces appended piece by piece (`MptWriter`, the
 * layout of `writeTrace`). The streamed index is in stream.ts, the streamed evaluator in
 * src/cost/stream.ts.
 */
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';
import { InputError, MoePlacerError } from '../errors.js';
import type { Model } from '../schemas.js';
import type { Trace, WorkloadMeta } from '../types.js';
import { fsError, peekContent, readContent, ReadContext } from './io.js';
import { checkTrace, MPT_MAGIC, mptChunkBytes, mptEndBytes, MptParser, mptPrefixBytes, type MptChunk, type MptHeader } from './mpt.js';

export type { MptChunk } from './mpt.js';

/** Raw byte progress of a streamed read: bytes read so far of `totalBytes` (the file's size). */
export type ByteProgress = (bytesRead: number, totalBytes: number) => void;

/** What a streamed read of an mpt file found. */
export interface MptStreamInfo {
  header: MptHeader;
  /** Tokens T read. */
  numTokens: number;
  /** `format: 'mpt'`, the path, the sha256 of the raw bytes (as `loadWorkload` computes it), notes. */
  meta: WorkloadMeta;
}

/**
 * Read the mpt trace at `path` (plain or gzipped) chunk by chunk, validated as `loadWorkload`
 * validates it, calling `onChunk` with each chunk (views valid only during the call). Memory: one
 * chunk of the file. Throws an InputError naming the file for a missing, empty, non-mpt, corrupt or
 * truncated file (a truncated file fails only at its end, after every complete chunk was handed on).
 */
export async function forEachMptChunk(
  path: string,
  model: Model,
  onChunk: (chunk: MptChunk, header: MptHeader) => void,
  opts: { onProgress?: ByteProgress } = {},
): Promise<MptStreamInfo> {
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new InputError('is a folder; streaming reads one mpt trace file', { file: path });
    if (!st.isFile()) throw new InputError('not a regular file', { file: path });
    size = st.size;
  } catch (err) {
    throw fsError(path, err);
  }
  if (size === 0) throw new InputError('empty file', { file: path });
  const peek = await peekContent(path);
  if (peek.content.length < 4 || peek.content.toString('latin1', 0, 4) !== MPT_MAGIC) {
    throw new InputError('not an mpt trace: streaming reads the binary mpt format only (convert other formats with writeTrace)', { file: path });
  }
  const ctx = new ReadContext(size, opts.onProgress);
  const parser: MptParser = new MptParser(path, model, peek.gzip ? size * 1032 + 1024 : size, (c) => onChunk(c, parser.header!));
  try {
    for await (const buf of readContent(path, ctx, size)) parser.push(buf);
  } catch (err) {
    if (err instanceof MoePlacerError) throw err;
    if (typeof (err as NodeJS.ErrnoException)?.code === 'string' && (err as NodeJS.ErrnoException).code!.startsWith('E')) throw fsError(path, err);
    throw err;
  }
  const numTokens = parser.end();
  const header = parser.header!;
  const notes = [...parser.notes, `${header.numRequests} requests, ${numTokens} tokens (streamed)`];
  if (!header.hasRank) notes.push('no source rank recorded');
  return { header, numTokens, meta: { format: 'mpt', path, digest: ctx.digest(), notes } };
}

/**
 * Per chunk: `source [n]` and `weight [n]` of each token as `tokenSetsOfLayer` computes them
 * (source = recorded rank, else request id, mod numGpus; weight 1 when the trace has none).
 * Buffers are reused across chunks (grown to the largest); `fill` overwrites them.
 */
export class ChunkScratch {
  source = new Uint16Array(0);
  weight = new Float64Array(0);

  fill(chunk: MptChunk, numGpus: number): void {
    const n = chunk.n;
    if (this.source.length < n) {
      this.source = new Uint16Array(n);
      this.weight = new Float64Array(n);
    }
    const { request, rank, weight } = chunk;
    const src = this.source;
    const w = this.weight;
    for (let t = 0; t < n; t++) {
      const r = rank[t];
      src[t] = (r >= 0 ? r : request[t]) % numGpus; // sourceOf() of tokens.ts
      w[t] = weight ? weight[t] : 1;
    }
  }
}

/** InputError naming `field` unless v is an integer in min..max. */
export function checkInt(v: number, min: number, max: number, field: string): void {
  if (!(Number.isInteger(v) && v >= min && v <= max)) throw new InputError(`must be an integer in ${min}..${max}, got ${v}`, { field });
}

// ------------------------------------------------------------------------------------------------
// MptWriter

export interface MptWriterOptions {
  /** Gzip the file (default: when the path ends in .gz). */
  gzip?: boolean;
  /** zlib level 1..9 (default 1). */
  gzipLevel?: number;
  /** Tokens per chunk (default 65536). */
  chunkTokens?: number;
}

/**
 * Writes one mpt file from traces appended piece by piece (e.g. a trace generated in parts too
 * large to hold at once), in exactly the layout of `writeTrace`. The header is given up front:
 * `numRequests` must bound every request id appended, `numTokens` is checked at `close` unless
 * null. Each piece is validated like `writeTrace` validates a trace, plus: its request ids below
 * `header.numRequests`, weights present exactly when `header.hasWeight`, no rank recorded when
 * `!header.hasRank`. The file appears atomically at `close` (written next to `path`, renamed);
 * `abort` removes the partial file.
 */
export class MptWriter {
  private numTokens = 0;
  private error: unknown = null;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly header: MptHeader,
    private readonly tmp: string,
    private readonly out: WriteStream,
    private readonly sink: WriteStream | Gzip,
    private readonly chunkTokens: number,
  ) {
    const keep = (err: unknown): void => {
      this.error ??= err;
    };
    out.on('error', (err) => {
      keep(err);
      if (sink !== out) sink.destroy(err); // a gzip stream waiting for drain would wait forever
    });
    if (sink !== out) sink.on('error', keep);
  }

  /** Open `path` for writing and write the header. */
  static async open(path: string, header: MptHeader, opts: MptWriterOptions = {}): Promise<MptWriter> {
    const chunkTokens = opts.chunkTokens ?? 65536;
    checkInt(chunkTokens, 1, 1 << 24, 'chunkTokens');
    if (header.idBytes !== (header.numExperts <= 256 ? 1 : 2)) throw new InputError(`must be ${header.numExperts <= 256 ? 1 : 2} for ${header.numExperts} experts`, { field: 'header.idBytes' });
    const tmp = `${path}.${process.pid}.tmp`;
    const out = createWriteStream(tmp);
    const gzip = opts.gzip ?? /\.gz$/i.test(path);
    const sink = gzip ? createGzip({ level: opts.gzipLevel ?? 1 }) : out;
    if (sink !== out) (sink as Gzip).pipe(out);
    const w = new MptWriter(path, header, tmp, out, sink, chunkTokens);
    await w.write(mptPrefixBytes(header));
    return w;
  }

  private async write(buf: Uint8Array): Promise<void> {
    if (this.error) throw fsError(this.path, this.error);
    if (!this.sink.write(buf)) {
      try {
        await once(this.sink, 'drain');
      } catch (err) {
        this.error ??= err;
      }
    }
    if (this.error) throw fsError(this.path, this.error);
  }

  /** Append the tokens of `trace` (request ids as in the file, i.e. already offset by the caller). */
  async append(trace: Trace): Promise<void> {
    if (this.closed) throw new Error('MptWriter.append after close');
    const h = this.header;
    checkTrace({ ...trace, numRequests: h.numRequests });
    const bad = (msg: string, field: string): never => {
      throw new InputError(msg, { field: `trace.${field}` });
    };
    if (trace.numLayers !== h.numLayers || trace.numExperts !== h.numExperts || trace.topK !== h.topK) {
      bad(`shape ${trace.numLayers} layers x ${trace.numExperts} experts x top-${trace.topK} differs from the header's ${h.numLayers} x ${h.numExperts} x top-${h.topK}`, 'numLayers');
    }
    if ((trace.weight !== null) !== h.hasWeight) bad(h.hasWeight ? 'the header says hasWeight: every piece needs weights' : 'the header says no weights', 'weight');
    if (!h.hasRank) {
      for (let t = 0; t < trace.numTokens; t++) if (trace.rank[t] >= 0) bad('the header says no rank is recorded', `rank[${t}]`);
    }
    if (h.numTokens !== null && this.numTokens + trace.numTokens > h.numTokens) bad(`${this.numTokens + trace.numTokens} tokens exceed the header's numTokens ${h.numTokens}`, 'numTokens');
    for (const buf of mptChunkBytes(trace, h, this.chunkTokens)) await this.write(buf);
    this.numTokens += trace.numTokens;
  }

  /** Write the end marker, close and move the file into place. Returns bytes written and tokens. */
  async close(): Promise<{ bytes: number; numTokens: number }> {
    if (this.closed) throw new Error('MptWriter.close twice');
    this.closed = true;
    try {
      if (this.header.numTokens !== null && this.numTokens !== this.header.numTokens) {
        throw new InputError(`${this.numTokens} tokens written, the header says ${this.header.numTokens}`, { file: this.path, field: 'header.numTokens' });
      }
      await this.write(mptEndBytes());
      this.sink.end();
      await finished(this.out);
      if (this.error) throw fsError(this.path, this.error);
      await rename(this.tmp, this.path);
    } catch (err) {
      await this.discard();
      throw err instanceof InputError ? err : fsError(this.path, err);
    }
    return { bytes: this.out.bytesWritten, numTokens: this.numTokens };
  }

  /** Give up: close and remove the partial file. */
  async abort(): Promise<void> {
    this.closed = true;
    await this.discard();
  }

  private async discard(): Promise<void> {
    this.sink.destroy();
    this.out.destroy();
    await unlink(this.tmp).catch(() => undefined);
  }
}
