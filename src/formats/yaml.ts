/**
 * The one YAML shape moe-placer writes and reads: TensorRT-LLM's MoE load-balancer config
 * (`moe_load_balancer.yaml`, the `MoeLoadBalancerConfig` of its wide-EP examples):
 *
 *     initial_global_assignments:
 *       3: [138, 81, 60, ...]      # engine layer id: the logical expert of each of num_slots slots
 *       4: [24, 243, 72, ...]
 *     num_slots: 288
 *     layer_updates_per_iter: 0    # 0 = static placement
 *
 * Written by hand (no YAML dependency); the reader accepts exactly this form: top-level
 * `key: value` lines, `initial_global_assignments:` followed by indented `<int>: [<ints>]` lines
 * (a list may continue over several lines until its `]`), `#` comments and blank lines.
 */
import { InputError } from '../errors.js';

export interface TrtllmLoadBalancer {
  numSlots: number;
  layerUpdatesPerIter: number;
  /** Engine layer id -> [num_slots] logical expert ids, in file order. */
  assignments: { layerId: number; experts: number[]; line: number }[];
}

/** YAML text of a TensorRT-LLM load-balancer config. */
export function writeTrtllmYaml(lb: Omit<TrtllmLoadBalancer, 'assignments'> & { assignments: { layerId: number; experts: ArrayLike<number> }[] }): string {
  const lines: string[] = ['initial_global_assignments:'];
  for (const a of lb.assignments) lines.push(`  ${a.layerId}: [${Array.from(a.experts).join(', ')}]`);
  lines.push(`num_slots: ${lb.numSlots}`);
  lines.push(`layer_updates_per_iter: ${lb.layerUpdatesPerIter}`);
  return lines.join('\n') + '\n';
}

function stripComment(line: string): string {
  const i = line.indexOf('#');
  return (i >= 0 ? line.slice(0, i) : line).replace(/\s+$/, '');
}

const INT = /^-?\d+$/;

function parseInt10(s: string, file: string, line: number, field: string): number {
  const t = s.trim();
  if (!INT.test(t)) throw new InputError(`expected an integer, got ${JSON.stringify(t)}`, { file, line, field });
  return Number(t);
}

/** Parse the TensorRT-LLM load-balancer YAML form above; errors name the file, line and key. */
export function parseTrtllmYaml(text: string, file: string): TrtllmLoadBalancer {
  const lines = text.split(/\r?\n/);
  let numSlots: number | undefined;
  let layerUpdatesPerIter = 0;
  let sawAssignments = false;
  const assignments: TrtllmLoadBalancer['assignments'] = [];
  const seen = new Set<number>();
  let inAssignments = false;
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = stripComment(lines[i]);
    if (raw.trim() === '') continue;
    const indented = /^\s/.test(raw);
    if (!indented) {
      inAssignments = false;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$/.exec(raw);
      if (!m) throw new InputError(`expected "key: value", got ${JSON.stringify(raw.trim())}`, { file, line: lineNo });
      const [, key, rest] = m;
      if (key === 'initial_global_assignments') {
        if (rest.trim() !== '' && rest.trim() !== '{}') throw new InputError('expected the layer lists on the following indented lines', { file, line: lineNo, field: key });
        sawAssignments = true;
        inAssignments = rest.trim() === '';
      } else if (key === 'num_slots') numSlots = parseInt10(rest, file, lineNo, key);
      else if (key === 'layer_updates_per_iter') layerUpdatesPerIter = parseInt10(rest, file, lineNo, key);
      // other TensorRT-LLM keys are ignored
      continue;
    }
    if (!inAssignments) throw new InputError('unexpected indented line', { file, line: lineNo });
    const m = /^\s+(-?\d+)\s*:\s*(.*)$/.exec(raw);
    if (!m) throw new InputError(`expected "<layer id>: [<expert ids>]", got ${JSON.stringify(raw.trim())}`, { file, line: lineNo, field: 'initial_global_assignments' });
    const layerId = Number(m[1]);
    const field = `initial_global_assignments.${layerId}`;
    let body = m[2].trim();
    const start = lineNo;
    while (!body.includes(']') && i + 1 < lines.length) {
      i++;
      body += ' ' + stripComment(lines[i]).trim();
    }
    if (!body.startsWith('[') || !body.endsWith(']')) throw new InputError('expected a list [a, b, ...]', { file, line: start, field });
    const inner = body.slice(1, -1).trim();
    const experts = inner === '' ? [] : inner.split(',').map((s) => parseInt10(s, file, start, field));
    if (seen.has(layerId)) throw new InputError('layer given twice', { file, line: start, field });
    seen.add(layerId);
    assignments.push({ layerId, experts, line: start });
  }
  if (!sawAssignments) throw new InputError('missing initial_global_assignments', { file, field: 'initial_global_assignments' });
  if (numSlots === undefined) throw new InputError('missing num_slots', { file, field: 'num_slots' });
  return { numSlots, layerUpdatesPerIter, assignments };
}
