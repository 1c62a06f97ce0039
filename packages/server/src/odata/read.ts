import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Caller, Condition } from './caller.js';
import { type Scope, and, fieldOf, filterSql, follow } from './filter-sql.js';
import { type Expand, MAX_TOP, type QueryOptions, invalidQuery } from './parser.js';
import type { Field, Resource } from './resources.js';

/**
 * Reads through the OData model: one SQL query per level of `$expand` (children of all parents at once, cut per
 * parent with row_number() for `$top`/`$skip`), never one per row.
 */

export type Entity = Record<string, unknown>;
type Row = Record<string, unknown>;

const MAX_EXPAND_DEPTH = 4;
/** Parent keys per expansion query; more rows are expanded in batches. */
const PARENT_BATCH = 500;

function value(field: Field, raw: unknown): unknown {
  if (raw === null || raw === undefined) return null;
  if (field.type === 'boolean') return Number(raw) === 1;
  if (field.type === 'integer' || field.type === 'number') return Number(raw);
  return raw;
}

interface Level {
  resource: Resource;
  alias: string;
  from: RawBuilder<unknown>;
  where: Condition[];
  /** Set for an expansion: the parent's key, returned as __parent. */
  parent?: RawBuilder<unknown>;
  /** INVARIANT: one counter per request, so every SQL alias in the query tree is distinct. */
  counter: { n: number };
}

function selectedFields(resource: Resource, options: QueryOptions): string[] {
  const names =
    options.select && options.select.length > 0 ? [...new Set(options.select)] : Object.keys(resource.fields);
  for (const name of names) {
    if (!Object.hasOwn(resource.fields, name))
      throw invalidQuery(
        Object.hasOwn(resource.navigations, name)
          ? `"${name}" is a navigation: $expand it`
          : `unknown field "${name}" in $select`,
      );
  }
  return names;
}

/**
 * The SQL of an `$orderby` path: a field of the row, or of a row reached through to-one navigations (a correlated
 * subquery per hop, each carrying the target's scope: a row the caller may not read sorts as null, never by its
 * value).
 */
function orderKey(resource: Resource, alias: string, path: string[], scope: Scope): RawBuilder<unknown> {
  const [name, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) return fieldOf(resource, name).sql(alias);
  const navigation = resource.navigations[name];
  if (navigation && !navigation.idField)
    throw invalidQuery(`"${name}" leads to many rows: $orderby follows only navigations to one row`);
  const next = follow(resource, name, alias, scope);
  return sql`(select ${orderKey(next.resource, next.alias, rest, scope)} from ${next.resource.from} as ${sql.id(
    next.alias,
  )} where ${next.condition})`;
}

function orderSql(resource: Resource, alias: string, options: QueryOptions, scope: Scope): RawBuilder<unknown> {
  const parts = (options.orderby ?? []).map((o) => {
    if (o.path.length > 4) throw invalidQuery('$orderby follows at most 3 navigations');
    return sql`${orderKey(resource, alias, o.path, scope)} ${sql.raw(o.descending ? 'desc' : 'asc')}`;
  });
  // INVARIANT: a total order, so pages ($top/$skip) neither repeat nor skip rows.
  if (resource.fields.id) parts.push(sql`${resource.fields.id.sql(alias)} asc`);
  else for (const field of Object.values(resource.fields)) parts.push(sql`${field.sql(alias)} asc`);
  return sql.join(parts);
}

async function runLevel(db: Db, caller: Caller, level: Level, options: QueryOptions, depth: number): Promise<Row[]> {
  const { resource, alias } = level;
  const scope: Scope = { aliases: new Map(), root: { resource, alias }, caller, next: level.counter };
  const where = [...level.where, resource.scope(alias, caller, false)];
  if (resource.where) where.push(resource.where(alias));
  if (options.filter) where.push(filterSql(options.filter, scope));
  const names = selectedFields(resource, options);
  const columns = names.map((name) => sql`${fieldOf(resource, name).sql(alias)} as ${sql.id(name)}`);
  if (resource.fields.id) columns.push(sql`${resource.fields.id.sql(alias)} as ${sql.id('__key')}`);
  if (level.parent) columns.push(sql`${level.parent} as ${sql.id('__parent')}`);
  const top = options.top ?? MAX_TOP;
  const skip = options.skip ?? 0;
  const order = orderSql(resource, alias, options, scope);
  const base = sql`from ${level.from} where ${and(where)}`;
  const query = level.parent
    ? sql<Row>`select * from (select ${sql.join(columns)}, row_number() over (partition by ${level.parent} order by ${order}) as ${sql.id(
        '__rn',
      )} ${base}) as ${sql.id('numbered')} where ${sql.ref('numbered.__rn')} > ${skip} and ${sql.ref(
        'numbered.__rn',
      )} <= ${skip + top}`
    : sql<Row>`select ${sql.join(columns)} ${base} order by ${order} limit ${top} offset ${skip}`;
  const rows = (await query.execute(db)).rows;
  const shaped = rows.map((row) => {
    const out: Row = {};
    for (const name of names) {
      const field = fieldOf(resource, name);
      const v = value(field, row[name]);
      const isNavigation = Object.values(resource.navigations).some((n) => n.idField === name);
      out[name] = isNavigation && v !== null ? { __id: v } : v;
    }
    if ('__key' in row) out.__key = Number(row.__key);
    if ('__parent' in row) out.__parent = Number(row.__parent);
    return out;
  });
  for (const expand of options.expand ?? [])
    await expandInto(db, caller, resource, alias, shaped, expand, depth + 1, level.counter);
  return shaped;
}

async function expandInto(
  db: Db,
  caller: Caller,
  resource: Resource,
  alias: string,
  rows: Row[],
  expand: Expand,
  depth: number,
  counter: { n: number },
): Promise<void> {
  if (depth > MAX_EXPAND_DEPTH) throw invalidQuery(`$expand nests deeper than ${MAX_EXPAND_DEPTH}`);
  if (!resource.fields.id) throw invalidQuery('this resource cannot be expanded from');
  const scope: Scope = { aliases: new Map(), root: { resource, alias }, caller, next: counter };
  const parentAlias = `p${++counter.n}`;
  const next = follow(resource, expand.navigation, parentAlias, scope);
  const parentKey = resource.fields.id.sql(parentAlias);
  const from = sql`${next.resource.from} as ${sql.id(next.alias)}, ${resource.from} as ${sql.id(parentAlias)}`;
  const byParent = new Map<number, Row[]>();
  const counts = new Map<number, number>();
  const keys = rows.map((r) => r.__key as number);
  for (let i = 0; i < keys.length; i += PARENT_BATCH) {
    const batch = keys.slice(i, i + PARENT_BATCH);
    const where: Condition[] = [next.condition, sql<SqlBool>`${parentKey} in (${sql.join(batch)})`];
    if (expand.count) {
      const cscope: Scope = { ...scope, root: { resource: next.resource, alias: next.alias } };
      if (expand.options.filter) where.push(filterSql(expand.options.filter, cscope));
      if (Object.keys(expand.options).some((k) => k !== 'filter')) throw invalidQuery('nav/$count takes only $filter');
      const result = await sql<{ parent: unknown; n: unknown }>`select ${parentKey} as ${sql.id(
        'parent',
      )}, count(*) as ${sql.id('n')} from ${from} where ${and(where)} group by ${parentKey}`.execute(db);
      for (const row of result.rows) counts.set(Number(row.parent), Number(row.n));
      continue;
    }
    const children = await runLevel(
      db,
      caller,
      { resource: next.resource, alias: next.alias, from, where, parent: parentKey, counter },
      expand.options,
      depth,
    );
    for (const child of children) {
      const list = byParent.get(child.__parent as number) ?? [];
      list.push(child);
      byParent.set(child.__parent as number, list);
    }
  }
  for (const row of rows) {
    const key = row.__key as number;
    row[expand.navigation] = expand.count ? (counts.get(key) ?? 0) : (byParent.get(key) ?? []);
  }
}

function strip(rows: Row[]): Entity[] {
  for (const row of rows) {
    delete row.__key;
    delete row.__parent;
    for (const v of Object.values(row)) if (Array.isArray(v)) strip(v as Row[]);
  }
  return rows;
}

/** The rows of `resource` the caller may read that match `options` (and `where`, e.g. a key). */
export async function readEntities(
  db: Db,
  caller: Caller,
  resource: Resource,
  options: QueryOptions,
  where: (alias: string) => Condition[] = () => [],
): Promise<Entity[]> {
  const alias = 'o0';
  const rows = await runLevel(
    db,
    caller,
    { resource, alias, from: sql`${resource.from} as ${sql.id(alias)}`, where: where(alias), counter: { n: 0 } },
    options,
    0,
  );
  return strip(rows);
}

/** How many rows of `resource` the caller may read match the filter (`resource/$count`). */
export async function countEntities(
  db: Db,
  caller: Caller,
  resource: Resource,
  options: QueryOptions,
  where: (alias: string) => Condition[] = () => [],
): Promise<number> {
  const alias = 'o0';
  const scope: Scope = { aliases: new Map(), root: { resource, alias }, caller, next: { n: 0 } };
  const parts = [...where(alias), resource.scope(alias, caller, false)];
  if (resource.where) parts.push(resource.where(alias));
  if (options.filter) parts.push(filterSql(options.filter, scope));
  if (options.expand || options.select || options.orderby) throw invalidQuery('$count takes only $filter');
  const result = await sql<{ n: unknown }>`select count(*) as ${sql.id('n')} from ${resource.from} as ${sql.id(
    alias,
  )} where ${and(parts)}`.execute(db);
  return Number(result.rows[0]?.n ?? 0);
}
