/**
 * One way to validate untyped input against a zod schema: `parseWith` runs `safeParse` and turns
 * every zod issue into one line of an `InputError` that names the field path, e.g.
 * `model.moeLayerIds[3]: layer ids must be strictly ascending`.
 */
import type { z } from 'zod';
import { InputError, type InputLocation } from './errors.js';

/** `where` + a zod issue path as `a.b[3].c` (numeric keys as indices). */
export function fieldPath(where: string, path: readonly PropertyKey[]): string {
  let out = where;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else {
      const s = String(key);
      out += out === '' ? s : `.${s}`;
    }
  }
  return out;
}

/** One line per zod issue: `where.path.to.field: message`. */
export function zodProblems(error: z.ZodError, where: string): string[] {
  return error.issues.map((issue) => {
    const path = fieldPath(where, issue.path);
    return path === '' ? issue.message : `${path}: ${issue.message}`;
  });
}

/**
 * Parse `value` with `schema`; on failure throw an `InputError` with one line per issue naming the
 * field (`where` is the prefix, e.g. `model` or `cluster.gpu`). `location.file` / `location.line`,
 * when given, prefix every line.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  where: string,
  location: Omit<InputLocation, 'field'> = {},
): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new InputError(zodProblems(result.error, where), location);
}
