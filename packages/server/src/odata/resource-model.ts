import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Caller, Condition } from './caller.js';

/**
 * The shape of the allow-list (resources.ts and the files it gathers) and the small builders its entries are written
 * with. INVARIANT: nothing outside the allow-list names a table or column from a request; a name missing there is a 400.
 */

/** Every resource served: RESOURCES must have exactly these keys. */
export type ResourceName =
  | 'organization'
  | 'user'
  | 'device_type'
  | 'application'
  | 'device'
  | 'release'
  | 'device_tag'
  | 'service'
  | 'service_install'
  | 'image'
  | 'release_image'
  | 'application_environment_variable'
  | 'application_config_variable'
  | 'device_environment_variable'
  | 'device_config_variable'
  | 'service_environment_variable'
  | 'device_service_environment_variable';

export type FieldType = 'integer' | 'text' | 'boolean' | 'number' | 'datetime';
export type Expr = (alias: string) => RawBuilder<unknown>;

export interface Field {
  type: FieldType;
  sql: Expr;
}

export interface Navigation {
  target: ResourceName;
  /** The condition joining a row of the target (`target` alias) to the row it hangs off (`source` alias). */
  join: (source: string, target: string) => Condition;
  /** To-one: the field holding the target's id, shown as `{ "__id": n }` when not expanded. */
  idField?: string;
}

export interface Resource {
  from: RawBuilder<unknown>;
  fields: Record<string, Field>;
  navigations: Record<string, Navigation>;
  /** Alternate keys usable as `resource(name='…')`. */
  alternateKeys: string[];
  /** Rows the caller may see (writing: may change). */
  scope: (alias: string, caller: Caller, writing: boolean) => Condition;
  /** Rows of the table that are this resource at all (fleet vs device variables share a table). */
  where?: (alias: string) => Condition;
}

export const col =
  (name: string): Expr =>
  (a) =>
    sql.ref(`${a}.${name}`);
export const f = (type: FieldType, sqlOf: Expr): Field => ({ type, sql: sqlOf });
// WARNING: a bare constant in ORDER BY is a column position (0 and 'text' are errors on PostgreSQL): cast it.
export const constant = (type: FieldType, value: number | string): Field => ({
  type,
  sql: () => sql`cast(${sql.lit(value)} as ${sql.raw(typeof value === 'number' ? 'integer' : 'text')})`,
});
export const bool = (expr: Expr): Field => ({
  type: 'boolean',
  sql: (a) => sql`(case when ${expr(a)} then 1 else 0 end)`,
});
/** Joins on `target.remote = source.local`. */
export const same =
  (local: string, remote = 'id') =>
  (s: string, t: string): Condition =>
    sql<SqlBool>`${sql.ref(`${t}.${remote}`)} = ${sql.ref(`${s}.${local}`)}`;
