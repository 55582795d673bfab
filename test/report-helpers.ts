/** Reading report pages in tests: the embedded data, elements and their attributes (not a test file itself). */
import type { ReportData } from '../src/report/data.js';
import { REPLAY_FORMAT } from '../src/report/replay.js';

/** The JSON embedded in a report page. */
export function embedded(html: string): ReportData {
  const m = /<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/.exec(html);
  if (!m) throw new Error('no report-data script');
  return JSON.parse(m[1]) as ReportData;
}

/** Attributes of every element `<tag ...>` whose attributes match `filter`. */
export function elements(html: string, tag: string, filter: (a: Record<string, string>) => boolean = () => true): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (const m of html.matchAll(new RegExp(`<${tag}\\b([^>]*)>`, 'g'))) {
    const attrs: Record<string, string> = {};
    for (const a of m[1].matchAll(/([\w:-]+)="([^"]*)"/g)) attrs[a[1]] = a[2].replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    if (filter(attrs)) out.push(attrs);
  }
  return out;
}

/** The element with this id, up to its own closing tag (nested elements of the same name counted). */
export function inside(html: string, id: string): string {
  const start = html.search(new RegExp(`<(\\w+)[^>]*\\bid="${id}"`));
  if (start < 0) throw new Error(`no element #${id}`);
  const tag = /^<(\w+)/.exec(html.slice(start))![1];
  const re = new RegExp(`<(/?)${tag}\\b[^>]*?(/?)>`, 'g');
  re.lastIndex = start;
  let depth = 0;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    if (m[1] === '/') depth--;
    else if (m[2] !== '/') depth++;
    if (depth === 0) return html.slice(start, m.index + m[0].length);
  }
  return html.slice(start);
}

export const REPLAY = {
  format: REPLAY_FORMAT,
  windows: ['w0', 'w1', 'w2', 'w3'],
  policies: [
    { name: 'static', perWindow: [1, 2, 3].map((w) => ({ window: w, balancedness: 0.8 - 0.05 * w, timeSeconds: 0.01 * w, interNodeBytes: 1e9, movedBytes: 0, extra: 'ignored' })) },
    { name: 'eplb', perWindow: [1, 2, 3].map((w) => ({ window: w, balancedness: 0.9, timeSeconds: 0.009, interNodeBytes: 1.1e9, movedBytes: 2e9 * w })) },
  ],
};

