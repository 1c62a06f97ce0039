import { type RawBuilder, type SqlBool, sql } from 'kysely';
import type { Caller, Condition } from './caller.js';
import { FALSE, TRUE } from './caller.js';
import { type Expr, type Literal, invalidQuery } from './parser.js';
import { type Field, type Resource, type ResourceName, resourceNamed } from './resources.js';

/**
 * Turns a parsed `$filter` into a Kysely SQL condition. Values are always bound parameters; names come only from the
 * resource model. Every navigation followed becomes an EXISTS subquery that also carries the target's scope, so a
 * filter can never test (and so leak) a row the caller could not read.
 */

export interface Scope {
  /** Lambda aliases and the root (`$it`) → the resource and the SQL alias of its row. */
  aliases: Map<string, { resource: Resource; alias: string }>;
  root: { resource: Resource; alias: string };
  caller: Caller;
  /** Counter for fresh SQL aliases; shared across one request. */
  next: { n: number };
}

const SQL_OPS = { eq: '=', ne: '<>', gt: '>', ge: '>=', lt: '<', le: '<=' } as const;

export function resourceOf(name: ResourceName): Resource {
  return resourceNamed(name) as Resource;
}

export function fieldOf(resource: Resource, name: string): Field {
  if (!Object.hasOwn(resource.fields, name)) throw invalidQuery(`unknown field "${name}"`);
  return resource.fields[name] as Field;
}

/** The target of navigation `name` from `source` aliased `s`, as a fresh alias with its join and scope. */
export function follow(
  resource: Resource,
  name: string,
  source: string,
  scope: Scope,
): { resource: Resource; alias: string; condition: Condition } {
  if (!Object.hasOwn(resource.navigations, name)) throw invalidQuery(`unknown navigation "${name}"`);
  const navigation = resource.navigations[name] as Resource['navigations'][string];
  const target = resourceOf(navigation.target);
  const alias = `o${++scope.next.n}`;
  const parts = [navigation.join(source, alias), target.scope(alias, scope.caller, false)];
  if (target.where) parts.push(target.where(alias));
  return { resource: target, alias, condition: and(parts) };
}

export function and(parts: Condition[]): Condition {
  return sql<SqlBool>`(${sql.join(parts, sql` and `)})`;
}

/** A literal as the field's column holds it; a 400 when the types do not match (PostgreSQL would 500 on some). */
function bind(field: Field, value: Literal): RawBuilder<unknown> {
  if (value === null) return sql`null`;
  switch (field.type) {
    case 'integer':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return sql`${value}`;
      break;
    case 'number':
      if (typeof value === 'number') return sql`${value}`;
      break;
    case 'boolean':
      if (typeof value === 'boolean') return sql`${value ? 1 : 0}`;
      break;
    case 'text':
    case 'datetime':
      if (typeof value === 'string') {
        if (value.includes('\0')) throw invalidQuery('strings cannot contain NUL');
        return sql`${value}`;
      }
      break;
  }
  throw invalidQuery(`a ${typeof value} cannot be compared with a ${field.type} field`);
}

function compareLiterals(op: keyof typeof SQL_OPS, a: Literal, b: Literal): boolean {
  if (a === null || b === null || typeof a !== typeof b) return op === 'ne' ? a !== b : op === 'eq' && a === b;
  const [x, y] = [a as number | string, b as number | string];
  return { eq: x === y, ne: x !== y, gt: x > y, ge: x >= y, lt: x < y, le: x <= y }[op];
}

/** Resolves a path's start: a lambda alias, or else the root row. */
function start(path: string[], scope: Scope): { at: { resource: Resource; alias: string }; rest: string[] } {
  const head = path[0] as string;
  const aliased = scope.aliases.get(head);
  if (aliased && path.length > 1) return { at: aliased, rest: path.slice(1) };
  return { at: scope.root, rest: path };
}

/**
 * `build(field SQL, field)` evaluated at the end of `path`, wrapping each to-one navigation on the way in an EXISTS.
 * A path through a to-many navigation needs a lambda (`any`/`all`), as in OData.
 */
function atPath(
  path: string[],
  scope: Scope,
  build: (expr: RawBuilder<unknown>, field: Field) => Condition,
): Condition {
  const { at, rest } = start(path, scope);
  const walk = (resource: Resource, alias: string, segments: string[]): Condition => {
    const [name, ...more] = segments as [string, ...string[]];
    if (more.length === 0) {
      const field = fieldOf(resource, name);
      return build(field.sql(alias), field);
    }
    const navigation = resource.navigations[name];
    if (navigation && !navigation.idField)
      throw invalidQuery(`"${name}" leads to many rows: use ${name}/any(x: …) to filter through it`);
    const next = follow(resource, name, alias, scope);
    return sql<SqlBool>`exists (select 1 from ${next.resource.from} as ${sql.id(next.alias)} where ${
      next.condition
    } and ${walk(next.resource, next.alias, more)})`;
  };
  return walk(at.resource, at.alias, rest);
}

/**
 * A side of a comparison that names a field: a path, or `tolower(path)` / `toupper(path)` (then only on text). Its
 * `wrap` turns the field's SQL into what is compared.
 */
function fieldSide(
  expr: Expr,
): { path: string[]; wrap?: (e: RawBuilder<unknown>, field: Field) => RawBuilder<unknown> } | undefined {
  if (expr.kind === 'path') return { path: expr.path };
  if (expr.kind !== 'call' || (expr.name !== 'tolower' && expr.name !== 'toupper')) return undefined;
  const [arg, ...more] = expr.args;
  if (arg?.kind !== 'path' || more.length > 0) throw invalidQuery(`${expr.name}() takes one field`);
  const fn = expr.name === 'tolower' ? sql`lower` : sql`upper`;
  return {
    path: arg.path,
    wrap: (e, field) => {
      if (field.type !== 'text') throw invalidQuery(`${expr.name}() takes a text field`);
      return sql`${fn}(${e})`;
    },
  };
}

/**
 * startswith / endswith / contains (field first) and substringof (value first), case-sensitive as OData says, on
 * both databases alike: substr and replace behave the same on SQLite and PostgreSQL, where LIKE does not (SQLite's
 * ignores case) and would need its wildcards escaped.
 */
function textMatch(expr: Extract<Expr, { kind: 'call' }>, scope: Scope): Condition {
  if (expr.args.length !== 2) throw invalidQuery(`${expr.name}() takes two arguments`);
  const [first, second] = expr.args as [Expr, Expr];
  const [fieldArg, valueArg] = expr.name === 'substringof' ? [second, first] : [first, second];
  const side = fieldSide(fieldArg);
  if (!side || valueArg.kind !== 'literal' || typeof valueArg.value !== 'string')
    throw invalidQuery(`${expr.name}() compares a text field with a quoted string`);
  const value = valueArg.value;
  const length = [...value].length;
  return atPath(side.path, scope, (column, field) => {
    if (field.type !== 'text') throw invalidQuery(`${expr.name}() takes a text field`);
    const e = side.wrap ? side.wrap(column, field) : column;
    const bound = bind(field, value);
    if (length === 0) return sql<SqlBool>`${e} is not null`;
    if (expr.name === 'startswith') return sql<SqlBool>`substr(${e}, 1, ${sql.lit(length)}) = ${bound}`;
    if (expr.name === 'endswith')
      return sql<SqlBool>`(length(${e}) >= ${sql.lit(length)} and substr(${e}, length(${e}) - ${sql.lit(length - 1)}, ${sql.lit(length)}) = ${bound})`;
    return sql<SqlBool>`replace(${e}, ${bound}, '') <> ${e}`;
  });
}

export function filterSql(expr: Expr, scope: Scope): Condition {
  switch (expr.kind) {
    case 'and':
    case 'or':
      return sql<SqlBool>`(${filterSql(expr.left, scope)} ${sql.raw(expr.kind)} ${filterSql(expr.right, scope)})`;
    case 'not':
      return sql<SqlBool>`(not ${filterSql(expr.expr, scope)})`;
    case 'literal':
      if (typeof expr.value === 'boolean') return expr.value ? TRUE : FALSE;
      throw invalidQuery('a filter must be a condition, not a value');
    case 'path':
      return atPath(expr.path, scope, (e, field) => {
        if (field.type !== 'boolean') throw invalidQuery(`"${expr.path.join('/')}" is not a boolean field`);
        return sql<SqlBool>`${e} = 1`;
      });
    case 'call':
      if (expr.name === 'tolower' || expr.name === 'toupper')
        throw invalidQuery(`${expr.name}() is a value: compare it (${expr.name}(name) eq 'x')`);
      return textMatch(expr, scope);
    case 'in': {
      const side = fieldSide(expr.left);
      if (!side) throw invalidQuery('"in" needs a field on its left');
      if (expr.values.length === 0) return FALSE;
      if (expr.values.length > 1000) throw invalidQuery('"in" takes at most 1000 values');
      return atPath(side.path, scope, (column, field) => {
        const e = side.wrap ? side.wrap(column, field) : column;
        return sql<SqlBool>`${e} in (${sql.join(expr.values.map((v) => bind(field, v)))})`;
      });
    }
    case 'compare': {
      const { op, left, right } = expr;
      if (left.kind === 'literal' && right.kind === 'literal')
        return compareLiterals(op, left.value, right.value) ? TRUE : FALSE;
      // `startswith(name,'x') eq true` (OData v3's form of a boolean function).
      const [call, truth] =
        left.kind === 'call' && right.kind === 'literal'
          ? [left, right.value]
          : right.kind === 'call' && left.kind === 'literal'
            ? [right, left.value]
            : [undefined, undefined];
      if (call && typeof truth === 'boolean' && (op === 'eq' || op === 'ne') && !fieldSide(call)) {
        const matched = textMatch(call, scope);
        return truth === (op === 'eq') ? matched : sql<SqlBool>`(not ${matched})`;
      }
      const [side, value, flipped] =
        fieldSide(left) && right.kind === 'literal'
          ? [fieldSide(left), right.value, false]
          : fieldSide(right) && left.kind === 'literal'
            ? [fieldSide(right), left.value, true]
            : [undefined, undefined, false];
      if (!side) throw invalidQuery('a comparison is between a field and a value');
      const sqlOp = flipped ? (({ gt: 'lt', ge: 'le', lt: 'gt', le: 'ge' } as Record<string, string>)[op] ?? op) : op;
      return atPath(side.path, scope, (column, field) => {
        const e = side.wrap ? side.wrap(column, field) : column;
        if (value === null) {
          if (op !== 'eq' && op !== 'ne') throw invalidQuery('null can only be compared with eq or ne');
          return sql<SqlBool>`${e} is ${op === 'eq' ? sql`null` : sql`not null`}`;
        }
        const bound = bind(field, value);
        if (op === 'ne') return sql<SqlBool>`(${e} is null or ${e} <> ${bound})`;
        return sql<SqlBool>`${e} ${sql.raw(SQL_OPS[sqlOp as keyof typeof SQL_OPS])} ${bound}`;
      });
    }
    case 'lambda': {
      const { at, rest } = start(expr.path, scope);
      if (rest.length !== 1) throw invalidQuery('a lambda follows one navigation (a/b/any(…) is not supported)');
      const next = follow(at.resource, rest[0] as string, at.alias, scope);
      const inner: Scope = { ...scope, aliases: new Map(scope.aliases).set(expr.alias, next) };
      const body = filterSql(expr.body, inner);
      const from = sql`${next.resource.from} as ${sql.id(next.alias)}`;
      return expr.op === 'any'
        ? sql<SqlBool>`exists (select 1 from ${from} where ${next.condition} and ${body})`
        : sql<SqlBool>`not exists (select 1 from ${from} where ${next.condition} and not ${body})`;
    }
  }
}
