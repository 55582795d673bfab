/**
 * Byte-level input for the workload readers: gzip-aware streaming of files (gzip detected by the
 * magic bytes 1f 8b, never by the file name), a running sha256 over the raw bytes read (files in
 * read order), progress reporting, peeking at a file's first bytes for format detection, line
 * splitting, natural ordering of file names and folder traversal.
 *
 * Every failure of the file system or of zlib becomes an `InputError` naming the file.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { constants as zc, createGunzip, gunzipSync } from 'node:zlib';
import { InputError } from '../errors.js';

/** Raw bytes read per read() of a file. */
const RAW_CHUNK = 1 << 20;
/** Decompressed bytes per chunk of gunzip output. */
const GUNZIP_CHUNK = 1 << 18;

/** True when `head` starts with the gzip magic bytes 1f 8b. */
export function isGzip(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Turn a Node file-system error into an InputError naming the file. */
export function fsError(file: string, err: unknown): InputError {
  if (err instanceof InputError) return err;
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return new InputError('no such file or folder', { file });
    case 'EACCES':
    case 'EPERM':
      return new InputError('permission denied', { file });
    case 'EISDIR':
      return new InputError('is a folder, expected a file', { file });
    case 'ENOTDIR':
      return new InputError('a component of the path is not a folder', { file });
    default:
      return new InputError(`cannot read: ${e?.message ?? String(err)}`, { file });
  }
}

/** Turn a zlib error into an InputError naming the file (truncated or corrupt gzip). */
function gzipError(file: string, err: unknown): InputError {
  if (err instanceof InputError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'Z_BUF_ERROR' || /unexpected end/i.test(e?.message ?? '')) {
    return new InputError('truncated gzip stream (unexpected end of file)', { file });
  }
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) {
    return new InputError(`corrupt gzip data: ${e.message}`, { file });
  }
  return fsError(file, err);
}

/**
 * State shared by all files of one load: the running digest over raw bytes (files in read order)
 * and progress in raw bytes against the total size of the files to read.
 */
export class ReadContext {
  readonly hash: Hash = createHash('sha256');
  bytesRead = 0;
  constructor(
    readonly totalBytes: number,
    private readonly onProgress?: (bytesRead: number, totalBytes: number) => void,
  ) {}

  /** Account for raw bytes just read. */
  consumed(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytesRead += chunk.length;
    if (this.onProgress) this.onProgress(this.bytesRead, this.totalBytes);
  }

  /** sha256 hex of every raw byte read so far. */
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Files up to this raw size are read in one call (and gunzipped in one call). */
const SMALL_FILE = 1 << 20;
/** Largest output of the one-call gunzip; beyond it the stream path is used. */
const SMALL_GUNZIP_MAX = 1 << 26;

/**
 * Stream the content of `file` (gunzipped when it starts with 1f 8b) as Buffers. Raw bytes are
 * fed to `ctx` (digest, progress) as they are read. Errors become InputErrors naming the file.
 * `size` (raw bytes, when known) lets small files be read and gunzipped in one call each.
 */
export async function* readContent(file: string, ctx: ReadContext, size?: number): AsyncGenerator<Buffer> {
  if (size !== undefined && size <= SMALL_FILE) {
    let raw: Buffer;
    try {
      raw = await readFile(file);
    } catch (err) {
      throw fsError(file, err);
    }
    ctx.consumed(raw);
    if (!isGzip(raw)) {
      if (raw.length > 0) yield raw;
      return;
    }
    let out: Buffer | null = null;
    try {
      out = gunzipSync(raw, { maxOutputLength: SMALL_GUNZIP_MAX });
    } catch (err) {
      if (!(err instanceof RangeError)) throw gzipError(file, err);
    }
    if (out) {
      if (out.length > 0) yield out;
      return;
    }
    yield* gunzipStream(file, (async function* () {
      yield raw;
    })());
    return;
  }
  let it: AsyncIterator<Buffer>;
  let first: IteratorResult<Buffer>;
  try {
    it = (createReadStream(file, { highWaterMark: RAW_CHUNK }) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    first = await it.next();
  } catch (err) {
    throw fsError(file, err);
  }
  if (first.done) return;
  const head = first.value;
  ctx.consumed(head);
  async function* raw(): AsyncGenerator<Buffer> {
    yield head;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        ctx.consumed(r.value);
        yield r.value;
      }
    } catch (err) {
      throw fsError(file, err);
    } finally {
      await it.return?.();
    }
  }
  if (!isGzip(head)) yield* raw();
  else yield* gunzipStream(file, raw());
}

async function* gunzipStream(file: string, raw: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK });
  const src = Readable.from(raw, { objectMode: false });
  src.on('error', (err) => gunzip.destroy(err));
  src.pipe(gunzip);
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (err) {
    throw gzipError(file, err);
  } finally {
    src.destroy();
    gunzip.destroy();
  }
}

/** The first bytes of a file's content (gunzipped if gzip), for format detection. Not digested. */
export interface Peek {
  /** Up to `max` bytes of content (fewer if the file is shorter). */
  content: Buffer;
  gzip: boolean;
  /** Raw size of the file in bytes. */
  size: number;
}

/** Read the first bytes of `file`'s content without consuming it. */
export async function peekContent(file: string, max = 1 << 16): Promise<Peek> {
  let raw: Buffer;
  let size: number;
  try {
    const fh = await open(file, 'r');
    try {
      size = (await fh.stat()).size;
      raw = Buffer.alloc(Math.min(size, max));
      const { bytesRead } = await fh.read(raw, 0, raw.length, 0);
      raw = raw.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fsError(file, err);
  }
  if (!isGzip(raw)) return { content: raw, gzip: false, size };
  let content: Buffer;
  const part = Math.min(raw.length, 1 << 14);
  try {
    // A whole small file must decompress completely (else it is truncated); of a prefix,
    // Z_SYNC_FLUSH decompresses what it holds instead of failing on the missing end.
    content = part === size ? gunzipSync(raw) : gunzipSync(raw.subarray(0, part), { finishFlush: zc.Z_SYNC_FLUSH });
  } catch (err) {
    throw gzipError(file, err);
  }
  return { content: content.subarray(0, max), gzip: true, size };
}

/** Receives one line as bytes `buf[start, end)` (no line terminator), 1-based `lineNo`. */
export type ByteLineFn = (buf: Buffer, start: number, end: number, lineNo: number) => void;

/**
 * Split streamed content into lines (`\n` or `\r\n`) handed over as byte ranges, without
 * decoding: `onLine(buf, start, end, lineNo)`. Only lines that straddle two chunks are copied.
 * A leading UTF-8 byte order mark is dropped. Returns the number of lines.
 */
export async function forEachByteLine(chunks: AsyncIterable<Buffer>, onLine: ByteLineFn): Promise<number> {
  let carry: Buffer | null = null;
  let lineNo = 0;
  let atStart = true;
  const emit = (buf: Buffer, s: number, e: number): void => {
    if (e > s && buf[e - 1] === 13) e--;
    onLine(buf, s, e, ++lineNo);
  };
  for await (let chunk of chunks) {
    if (chunk.length === 0) continue;
    if (atStart) {
      if (carry) {
        chunk = Buffer.concat([carry, chunk]);
        carry = null;
      }
      if (chunk.length < 3 && chunk[0] === 0xef) {
        carry = chunk;
        continue;
      }
      atStart = false;
      if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
    }
    let pos = 0;
    if (carry) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        carry = Buffer.concat([carry, chunk]);
        continue;
      }
      const line = Buffer.concat([carry, chunk.subarray(0, nl)]);
      carry = null;
      emit(line, 0, line.length);
      pos = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(10, pos);
      if (nl < 0) break;
      emit(chunk, pos, nl);
      pos = nl + 1;
    }
    if (pos < chunk.length) carry = chunk.subarray(pos);
  }
  if (carry && carry.length > 0) emit(carry, 0, carry.length);
  return lineNo;
}

/**
 * Split streamed content into UTF-8 text lines, calling `onLine(line, lineNo)` with 1-based line
 * numbers. Returns the number of lines.
 */
export function forEachLine(chunks: AsyncIterable<Buffer>, onLine: (line: string, lineNo: number) => void): Promise<number> {
  return forEachByteLine(chunks, (buf, s, e, no) => onLine(buf.toString('utf8', s, e), no));
}

/** Collect streamed content into one UTF-8 string (BOM dropped). */
export async function readText(chunks: AsyncIterable<Buffer>): Promise<string> {
  const decoder = new StringDecoder('utf8');
  const parts: string[] = [];
  for await (const chunk of chunks) parts.push(decoder.write(chunk));
  parts.push(decoder.end());
  const text = parts.join('');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Natural order of names: runs of digits compare by numeric value (`p2` < `p10`), the rest by
 * code unit; ties (e.g. `p01` vs `p1`) fall back to plain comparison so the order is total.
 */
export function naturalCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(j);
    const da = ca >= 48 && ca <= 57;
    const db = cb >= 48 && cb <= 57;
    if (da && db) {
      let ie = i;
      while (ie < a.length && isDigit(a.charCodeAt(ie))) ie++;
      let je = j;
      while (je < b.length && isDigit(b.charCodeAt(je))) je++;
      // strip leading zeros, then longer run = larger number, then digit by digit
      let ia = i;
      while (ia < ie - 1 && a.charCodeAt(ia) === 48) ia++;
      let jb = j;
      while (jb < je - 1 && b.charCodeAt(jb) === 48) jb++;
      const la = ie - ia;
      const lb = je - jb;
      if (la !== lb) return la - lb;
      for (let t = 0; t < la; t++) {
        const d = a.charCodeAt(ia + t) - b.charCodeAt(jb + t);
        if (d !== 0) return d;
      }
      i = ie;
      j = je;
    } else {
      if (ca !== cb) return ca - cb;
      i++;
      j++;
    }
  }
  if (a.length - i !== b.length - j) return a.length - i - (b.length - j);
  return a < b ? -1 : a > b ? 1 : 0;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/** A file found under a folder, with its raw size. */
export interface FileEntry {
  path: string;
  size: number;
}

/**
 * Every regular file under `dir`, entries of each folder visited in natural order of their names
 * (sub-folders descended where they fall in that order). Hidden entries (names starting with `.`)
 * are skipped and counted.
 */
export async function listFiles(dir: string): Promise<{ files: FileEntry[]; hidden: number }> {
  const files: FileEntry[] = [];
  let hidden = 0;
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch (err) {
      throw fsError(d, err);
    }
    names.sort(naturalCompare);
    for (const name of names) {
      if (name.startsWith('.')) {
        hidden++;
        continue;
      }
      const p = join(d, name);
      let st;
      try {
        st = await stat(p);
      } catch (err) {
        throw fsError(p, err);
      }
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) files.push({ path: p, size: st.size });
    }
  };
  await walk(dir);
  return { files, hidden };
}

/** Line (1-based) of character `pos` in `text`. */
export function lineOfPosition(text: string, pos: number): number {
  let line = 1;
  const end = Math.min(pos, text.length);
  for (let i = 0; i < end; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * JSON.parse with errors as InputError naming the file and, when the engine reports a position,
 * the line. `lineOffset` is added for single lines of a JSON-lines file.
 */
export function parseJson(text: string, file: string, line?: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    let at = line;
    if (at === undefined) {
      const m = /position (\d+)/.exec(msg);
      if (m) at = lineOfPosition(text, Number(m[1]));
    }
    return raise(`unreadable JSON: ${msg}`, { file, line: at });
  }
}

function raise(msg: string, loc: { file: string; line?: number }): never {
  throw new InputError(msg, loc);
}
