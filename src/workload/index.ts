/**
 * Workload readers: one entry point, `loadWorkload(path, model)`, for every supported format,
 * detected from the content (never from the file name). Files may be gzipped (magic 1f 8b).
 *
 * | format          | what                                                              | result  |
 * |-----------------|-------------------------------------------------------------------|---------|
 * | `sglang-counts` | `{"logical_count": [L_engine][E]}` (or `[S][L_engine][E]`)          | counts  |
 * | `eplb-json`     | plain `[L][E]` JSON matrix (EPLB's `weight`)                        | counts  |
 * | `counts-csv`    | `[L][E]` as CSV, one row per layer, optional header line            | counts  |
 * | `usage-counts`  | `{"expert_usage_by_layer": {"<layer>": {"<expert>": n}}}`           | counts  |
 * | `v2lite-csv`    | folder (or file) of per-request CSV traces                         | trace   |
 * | `maverick-json` | folder (or file) of per-request JSON step traces, nested folders ok | trace   |
 * | `mpt`           | the canonical binary trace (see mpt.ts, docs/trace-format.md)       | trace   |
 * | `mpt-jsonl`     | the canonical JSON-lines trace, one token per line                  | trace   |
 *
 * Folders: every file below the folder (hidden names skipped) in natural order of names, folders
 * descended where they fall in that order; each file is one request (ids 0.. in read order).
 * `meta.digest` is the sha256 of the raw bytes read, files in read order.
 * Every problem is an `InputError` naming the file, the line (text formats) and the field.
 */
import { stat } from 'node:fs/promises';
import { InputError, MoePlacerError } from '../errors.js';
import type { Model } from '../schemas.js';
import type { Trace, Workload, WorkloadMeta } from '../types.js';
import { TraceBuilder } from './builder.js';
import {
  CountsCsvParser,
  countsFromJsonMatrix,
  countsFromSglang,
  countsFromUsageByLayer,
  looksNumeric,
  type CountsResult,
} from './counts.js';
import { V2LITE_HEADER, V2LiteCsvParser } from './csv-trace.js';
import { forEachByteLine, fsError, forEachLine, listFiles, parseJson, peekContent, readContent, ReadContext, readText, type FileEntry, type Peek } from './io.js';
import { JsonStepsParser } from './json-steps.js';
import { MPT_MAGIC, MptJsonlParser, MptParser } from './mpt.js';

export { checkTrace, MPT_FORMAT, MPT_MAGIC, MPT_VERSION, mptHeaderOf, MptJsonlParser, MptParser, writeTrace } from './mpt.js';
export type { MptHeader, WriteTraceOptions } from './mpt.js';
export { naturalCompare } from './io.js';
export { V2LITE_HEADER } from './csv-trace.js';

/** Formats `loadWorkload` understands (the value of `meta.format`). */
export type WorkloadFormat =
  | 'sglang-counts'
  | 'eplb-json'
  | 'counts-csv'
  | 'usage-counts'
  | 'v2lite-csv'
  | 'maverick-json'
  | 'mpt'
  | 'mpt-jsonl';

/** Formats where one file is one request, accepted as folders. */
const PER_REQUEST: ReadonlySet<WorkloadFormat> = new Set(['v2lite-csv', 'maverick-json']);

export interface LoadOptions {
  /** Called as raw bytes are read; `totalBytes` = the summed size of the files to read. */
  onProgress?: (bytesRead: number, totalBytes: number) => void;
}

const JSONL_FIRST_KEYS = new Set(['request', 'rank', 'weight', 'experts']);

/** Format of one file from its first bytes (decompressed). Throws InputError if unknown. */
function detectContent(peek: Peek, file: string): WorkloadFormat {
  const c = peek.content;
  if (c.length === 0) throw new InputError(peek.size === 0 ? 'empty file' : 'empty file (the gzip stream holds no data)', { file });
  if (c.length >= 4 && c.toString('latin1', 0, 4) === MPT_MAGIC) return 'mpt';
  let text = c.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const t = text.trimStart();
  if (t.length === 0) throw new InputError('empty file (only white space)', { file });
  if (t.startsWith(V2LITE_HEADER.slice(0, 9))) return 'v2lite-csv';
  if (t[0] === '{') {
    const key = /^\{\s*"([^"\\]*)"/.exec(t)?.[1];
    if (key !== undefined && JSONL_FIRST_KEYS.has(key)) return 'mpt-jsonl';
    if (t.includes('"logical_count"')) return 'sglang-counts';
    if (t.includes('"expert_usage_by_layer"')) return 'usage-counts';
    throw new InputError(
      'unknown workload format: a JSON object without "logical_count" (SGLang counts), "expert_usage_by_layer" or, one token per line, "experts" (mpt-jsonl)',
      { file },
    );
  }
  if (t[0] === '[') {
    const next = t.slice(1).trimStart()[0];
    return next === '{' ? 'maverick-json' : 'eplb-json';
  }
  const lines = t.split('\n', 3).map((s) => s.replace(/\r$/, ''));
  if (looksNumeric(lines[0].split(','))) return 'counts-csv';
  if (lines.length > 1 && lines[0].includes(',') && looksNumeric(lines[1].split(','))) return 'counts-csv';
  throw new InputError(`unknown workload format (first line: ${JSON.stringify(lines[0].slice(0, 60))})`, { file, line: 1 });
}

interface Source {
  path: string;
  folder: boolean;
  files: FileEntry[];
  hidden: number;
  format: WorkloadFormat;
  /** gzip of the first file */
  gzip: boolean;
}

async function resolveSource(path: string): Promise<Source> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw fsError(path, err);
  }
  if (st.isDirectory()) {
    const { files, hidden } = await listFiles(path);
    if (files.length === 0) throw new InputError(`empty folder: no workload files${hidden > 0 ? ` (${hidden} hidden entries skipped)` : ''}`, { file: path });
    const peek = await peekContent(files[0].path);
    const format = detectContent(peek, files[0].path);
    if (!PER_REQUEST.has(format)) {
      throw new InputError(
        `holds ${format} files; a folder must hold per-request traces (v2lite-csv or maverick-json): give a ${format} file itself`,
        { file: path },
      );
    }
    return { path, folder: true, files, hidden, format, gzip: peek.gzip };
  }
  if (!st.isFile()) throw new InputError('not a regular file or folder', { file: path });
  if (st.size === 0) throw new InputError('empty file', { file: path });
  const peek = await peekContent(path);
  return { path, folder: false, files: [{ path, size: st.size }], hidden: 0, format: detectContent(peek, path), gzip: peek.gzip };
}

/**
 * Format of the workload at `path` (a file, or a folder of per-request traces), from content.
 * Throws InputError for a missing path, an empty file or folder, or an unknown format.
 */
export async function detectFormat(path: string): Promise<WorkloadFormat> {
  return (await resolveSource(path)).format;
}

/**
 * Read the workload at `path` for `model`: a per-token trace or per-layer counts, validated
 * against the model (MoE layers, experts, top-k). Streams files (gunzipping as needed); traces
 * land in typed arrays without per-token objects.
 */
export async function loadWorkload(path: string, model: Model, opts: LoadOptions = {}): Promise<Workload> {
  try {
    const src = await resolveSource(path);
    const total = src.files.reduce((s, f) => s + f.size, 0);
    const ctx = new ReadContext(total, opts.onProgress);
    const notes: string[] = [];
    const meta = (): WorkloadMeta => ({ format: src.format, path, digest: ctx.digest(), notes });
    if (src.hidden > 0) notes.push(`${src.hidden} hidden entries skipped`);
    switch (src.format) {
      case 'sglang-counts':
      case 'eplb-json':
      case 'usage-counts':
      case 'counts-csv': {
        const r = await readCounts(src, model, ctx);
        notes.push(...r.notes);
        return { kind: 'counts', counts: r.counts, meta: meta() };
      }
      case 'v2lite-csv':
      case 'maverick-json': {
        const trace = await readPerRequest(src, model, ctx);
        notes.push(...describeRequests(trace, src));
        return { kind: 'trace', trace, meta: meta() };
      }
      case 'mpt': {
        const file = src.files[0];
        const parser = new MptParser(file.path, model, src.gzip ? file.size * 1032 + 1024 : file.size);
        for await (const chunk of readContent(file.path, ctx, file.size)) parser.push(chunk);
        const trace = parser.finish();
        notes.push(...parser.notes, `${trace.numRequests} requests, ${trace.numTokens} tokens`);
        if (!parser.header!.hasRank) notes.push('no source rank recorded');
        return { kind: 'trace', trace, meta: meta() };
      }
      case 'mpt-jsonl': {
        const { path: file, size } = src.files[0];
        const parser = new MptJsonlParser(file, model);
        await forEachLine(readContent(file, ctx, size), (line, no) => parser.line(line, no));
        const { trace, notes: n } = parser.finish();
        notes.push(`${trace.numRequests} requests, ${trace.numTokens} tokens`, ...n);
        return { kind: 'trace', trace, meta: meta() };
      }
    }
  } catch (err) {
    if (err instanceof MoePlacerError) throw err;
    if (typeof (err as NodeJS.ErrnoException)?.code === 'string' && (err as NodeJS.ErrnoException).code!.startsWith('E')) throw fsError(path, err);
    throw err;
  }
}

/** Read a trace from the canonical `mpt` / `mpt-jsonl` file at `path` (error if it is another format). */
export async function readTrace(path: string, model: Model, opts: LoadOptions = {}): Promise<{ trace: Trace; meta: WorkloadMeta }> {
  const w = await loadWorkload(path, model, opts);
  if (w.kind !== 'trace') throw new InputError(`holds ${w.meta.format} counts, not a per-token trace`, { file: path });
  return { trace: w.trace, meta: w.meta };
}

async function readCounts(src: Source, model: Model, ctx: ReadContext): Promise<CountsResult> {
  const { path: file, size } = src.files[0];
  if (src.format === 'counts-csv') {
    const parser = new CountsCsvParser(file, model);
    await forEachLine(readContent(file, ctx, size), (line, no) => parser.line(line, no));
    return parser.finish();
  }
  const doc = parseJson(await readText(readContent(file, ctx, size)), file);
  if (src.format === 'eplb-json') {
    if (!Array.isArray(doc)) throw new InputError('expected a JSON list of layer rows', { file });
    return countsFromJsonMatrix(doc, model, file);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InputError('expected a JSON object', { file });
  const rec = doc as Record<string, unknown>;
  if (src.format === 'sglang-counts') {
    if (!('logical_count' in rec)) throw new InputError('missing "logical_count"', { file, field: 'logical_count' });
    return countsFromSglang(rec, model, file);
  }
  if (!('expert_usage_by_layer' in rec)) throw new InputError('missing "expert_usage_by_layer"', { file, field: 'expert_usage_by_layer' });
  return countsFromUsageByLayer(rec, model, file);
}

async function readPerRequest(src: Source, model: Model, ctx: ReadContext): Promise<Trace> {
  const builder = new TraceBuilder(model.moeLayerIds.length, model.experts, model.topK, { capacity: 4096 });
  let request = 0;
  if (src.format === 'v2lite-csv') {
    const parser = new V2LiteCsvParser(model, builder);
    for (const f of src.files) {
      parser.beginFile(f.path);
      const lines = await forEachByteLine(readContent(f.path, ctx, f.size), (buf, s, e, no) => parser.line(buf, s, e, no));
      parser.endFile(request++, lines);
    }
  } else {
    const parser = new JsonStepsParser(model, builder);
    for (const f of src.files) {
      const text = await readText(readContent(f.path, ctx, f.size));
      if (text.trim() === '') throw new InputError('empty file', { file: f.path });
      parser.addFile(parseJson(text, f.path), f.path, request++);
    }
  }
  return builder.finish(request);
}

function describeRequests(trace: Trace, src: Source): string[] {
  const per = new Uint32Array(trace.numRequests);
  for (let t = 0; t < trace.numTokens; t++) per[trace.request[t]]++;
  const sorted = per.slice().sort();
  const notes = [
    `${trace.numRequests} requests (${src.folder ? 'files' : 'one file'}), ${trace.numTokens} tokens; tokens per request min ${sorted[0]}, median ${sorted[sorted.length >> 1]}, max ${sorted[sorted.length - 1]}`,
    'no source rank recorded: request i goes to source GPU i mod numGpus',
  ];
  return notes;
}
