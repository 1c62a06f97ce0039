import { type RawBuilder, type SqlBool, sql } from 'kysely';

/**
 * Who asks through the OData layer. A user sees the rows of their organizations (writes: those where their role may
 * write); a device key sees its own device and what hangs off it, as on the device API.
 */
export type Caller =
  | { kind: 'user'; userId: number; orgIds: number[]; writerOrgIds: number[] }
  | { kind: 'device'; deviceId: number; fleetId: number };

export type Condition = RawBuilder<SqlBool>;

export const TRUE: Condition = sql<SqlBool>`1 = 1`;
export const FALSE: Condition = sql<SqlBool>`1 = 0`;

/** `expr in (ids)`; false for no ids (SQL has no empty list). */
export function inIds(expr: RawBuilder<unknown>, ids: readonly number[]): Condition {
  if (ids.length === 0) return FALSE;
  return sql<SqlBool>`${expr} in (${sql.join(ids.map((id) => sql`${id}`))})`;
}

/** The caller's organizations, for reading or (writing) only where their role may write. */
export function orgsOf(caller: Caller & { kind: 'user' }, writing: boolean): number[] {
  return writing ? caller.writerOrgIds : caller.orgIds;
}

/** `fleetColumn` names a fleet of the caller's organizations (a device: its own fleet). */
export function fleetVisible(fleetColumn: RawBuilder<unknown>, caller: Caller, writing: boolean): Condition {
  if (caller.kind === 'device') return sql<SqlBool>`${fleetColumn} = ${caller.fleetId}`;
  const orgs = orgsOf(caller, writing);
  if (orgs.length === 0) return FALSE;
  return sql<SqlBool>`${fleetColumn} in (select f.id from fleets as f where ${inIds(sql.ref('f.organization_id'), orgs)})`;
}
