import { type Literal, invalidQuery, parseKey } from './parser.js';
import { RESOURCES, type ResourceName } from './resources.js';

export interface ResourcePath {
  name: ResourceName;
  /** `resource(<key>)`: the field (`id` unless an alternate key is named) and its value. */
  key?: { field: string; value: Literal };
  /** `resource/$count`. */
  count: boolean;
}

const PATH = /^([a-z_]{1,64})(?:\((.{1,600})\))?(\/\$count)?$/s;

/** `device`, `device(7)`, `device(uuid='…')`, `device/$count`: the part of the URL after `/v7/`. */
export function parseResourcePath(text: string): ResourcePath {
  const match = PATH.exec(text);
  if (!match) throw invalidQuery('expected /v7/<resource>, /v7/<resource>(<key>) or /v7/<resource>/$count');
  const name = match[1] as string;
  if (!Object.hasOwn(RESOURCES, name)) throw invalidQuery(`unknown resource "${name}"`);
  const resource = RESOURCES[name as ResourceName];
  const out: ResourcePath = { name: name as ResourceName, count: match[3] !== undefined };
  if (match[2] !== undefined) {
    const key = parseKey(match[2]);
    const field = key.field ?? 'id';
    if (field !== 'id' && !(resource.alternateKeys as string[]).includes(field))
      throw invalidQuery(`"${field}" is not a key of ${name}`);
    out.key = { field, value: key.value };
  }
  return out;
}
