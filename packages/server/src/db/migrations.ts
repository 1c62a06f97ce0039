import { sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import type { Dialect } from './dialect.js';

/**
 * Migrations live in code so a single binary carries its schema. INVARIANT: a released migration is never edited;
 * add a new one.
 */
export function migrations(dialect: Dialect): MigrationProvider {
  // SQLite wants INTEGER PRIMARY KEY AUTOINCREMENT; PostgreSQL wants an identity/serial column.
  const id = dialect === 'postgres' ? ('serial' as const) : ('integer' as const);
  const pk = (c: import('kysely').ColumnDefinitionBuilder) =>
    dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement();
  const all: Record<string, Migration> = {
    '0001-initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('organizations')
          .addColumn('id', id, pk)
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('handle', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('users')
          .addColumn('id', id, pk)
          .addColumn('username', 'text', (c) => c.notNull().unique())
          .addColumn('email', 'text')
          .addColumn('password_hash', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('memberships')
          .addColumn('organization_id', 'integer', (c) =>
            c.notNull().references('organizations.id').onDelete('cascade'),
          )
          .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('role', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('memberships_pk', ['organization_id', 'user_id'])
          .execute();
        await db.schema
          .createTable('sessions')
          .addColumn('id', id, pk)
          .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('token_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('api_keys')
          .addColumn('id', id, pk)
          .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('description', 'text')
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('last_used_at', 'text')
          .execute();
        await db.schema
          .createTable('fleets')
          .addColumn('id', id, pk)
          .addColumn('uuid', 'text', (c) => c.notNull().unique())
          .addColumn('organization_id', 'integer', (c) =>
            c.notNull().references('organizations.id').onDelete('cascade'),
          )
          .addColumn('name', 'text', (c) => c.notNull())
          // Globally unique: registry repositories are named `<fleet slug>/<service>`.
          .addColumn('slug', 'text', (c) => c.notNull().unique())
          .addColumn('device_type', 'text', (c) => c.notNull())
          .addColumn('pinned_release_id', 'integer')
          .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('provisioning_keys')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('name', 'text')
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text')
          .addColumn('revoked_at', 'text')
          .execute();
        await db.schema
          .createTable('devices')
          .addColumn('id', id, pk)
          .addColumn('uuid', 'text', (c) => c.notNull().unique())
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('device_type', 'text', (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.unique())
          .addColumn('pinned_release_id', 'integer')
          .addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('status', 'text')
          .addColumn('last_seen_at', 'text')
          .addColumn('os_version', 'text')
          .addColumn('os_variant', 'text')
          .addColumn('agent_version', 'text')
          .addColumn('ip_address', 'text')
          .addColumn('mac_address', 'text')
          .addColumn('api_port', 'integer')
          .addColumn('cpu_usage', 'real')
          .addColumn('cpu_temp', 'real')
          .addColumn('memory_usage', 'bigint')
          .addColumn('memory_total', 'bigint')
          .addColumn('storage_usage', 'bigint')
          .addColumn('storage_total', 'bigint')
          .addColumn('running_release', 'text')
          .addColumn('services_json', 'text', (c) => c.notNull().defaultTo('{}'))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('devices_fleet_idx').on('devices').column('fleet_id').execute();
        await db.schema
          .createTable('releases')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('commit', 'text', (c) => c.notNull())
          .addColumn('version', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('is_final', 'integer', (c) => c.notNull())
          .addColumn('composition_json', 'text', (c) => c.notNull())
          .addColumn('notes', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('releases_fleet_commit', ['fleet_id', 'commit'])
          .execute();
        await db.schema
          .createTable('release_services')
          .addColumn('id', id, pk)
          .addColumn('release_id', 'integer', (c) => c.notNull().references('releases.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('image', 'text')
          .addUniqueConstraint('release_services_name', ['release_id', 'name'])
          .execute();
        await db.schema
          .createTable('env_vars')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('device_id', 'integer', (c) => c.references('devices.id').onDelete('cascade'))
          .addColumn('service', 'text')
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('env_vars_fleet_idx').on('env_vars').columns(['fleet_id', 'device_id']).execute();
        await db.schema
          .createTable('config_vars')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('device_id', 'integer', (c) => c.references('devices.id').onDelete('cascade'))
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('config_vars_fleet_idx')
          .on('config_vars')
          .columns(['fleet_id', 'device_id'])
          .execute();
        await db.schema
          .createTable('device_tags')
          .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('device_tags_pk', ['device_id', 'key'])
          .execute();
      },
    },
    '0002-device-logs': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('device_logs')
          .addColumn('id', id, pk)
          .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('timestamp', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('is_system', 'integer', (c) => c.notNull())
          .addColumn('is_std_err', 'integer', (c) => c.notNull())
          .addColumn('service_name', 'text')
          .execute();
        await db.schema.createIndex('device_logs_device_idx').on('device_logs').columns(['device_id', 'id']).execute();
      },
    },
    '0003-device-actions': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('device_actions')
          .addColumn('id', id, pk)
          .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('service', 'text')
          .addColumn('force', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('error_code', 'text')
          .addColumn('error_message', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addColumn('delivered_at', 'text')
          .addColumn('completed_at', 'text')
          .execute();
        await db.schema
          .createIndex('device_actions_device_idx')
          .on('device_actions')
          .columns(['device_id', 'status'])
          .execute();
      },
    },
    '0004-auth': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .alterTable('users')
          .addColumn('is_server_admin', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        // The first user is the one the server bootstrapped: it stays able to create users.
        await sql`update users set is_server_admin = 1 where id = (select min(id) from users)`.execute(db);
        // Null on keys made before this migration: their creator was not recorded.
        await db.schema
          .alterTable('provisioning_keys')
          .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('cascade'))
          .execute();
        await db.schema
          .createTable('invitations')
          .addColumn('id', id, pk)
          .addColumn('organization_id', 'integer', (c) =>
            c.notNull().references('organizations.id').onDelete('cascade'),
          )
          .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('invited_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('invitations_org_user', ['organization_id', 'user_id'])
          .execute();
        await db.schema.createIndex('invitations_user_idx').on('invitations').column('user_id').execute();
      },
    },
    '0005-remote-access': {
      async up(db: Kysely<unknown>) {
        // Null: the device's public URL is off (nothing is reachable unless enabled).
        await db.schema.alterTable('devices').addColumn('public_url_port', 'integer').execute();
        // The audit log outlives the device and the user it names, so no foreign keys: ids and names are kept.
        await db.schema
          .createTable('remote_sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('organization_id', 'integer', (c) => c.notNull())
          .addColumn('device_id', 'integer', (c) => c.notNull())
          .addColumn('device_uuid', 'text', (c) => c.notNull())
          .addColumn('device_name', 'text')
          .addColumn('user_id', 'integer')
          .addColumn('username', 'text')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('target', 'text', (c) => c.notNull())
          .addColumn('request_json', 'text', (c) => c.notNull())
          .addColumn('relay_node', 'text', (c) => c.notNull())
          .addColumn('remote_address', 'text')
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('ended_at', 'text')
          .addColumn('bytes_in', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('bytes_out', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('end_reason', 'text')
          .execute();
        await db.schema
          .createIndex('remote_sessions_org_idx')
          .on('remote_sessions')
          .columns(['organization_id', 'started_at'])
          .execute();
        await db.schema
          .createIndex('remote_sessions_device_idx')
          .on('remote_sessions')
          .columns(['device_id', 'started_at'])
          .execute();
      },
    },
    '0006-device-last-seen': {
      async up(db: Kysely<unknown>) {
        // The live device feed looks every second for devices of followed fleets whose last sign of life just left
        // the online window (events/device-changes.ts), and the device list filters and counts by it: a range of
        // this index each time, not a scan of the fleet.
        await db.schema
          .createIndex('devices_fleet_last_seen_idx')
          .on('devices')
          .columns(['fleet_id', 'last_seen_at'])
          .execute();
      },
    },
    '0007-release-created-by': {
      async up(db: Kysely<unknown>) {
        // Who created each release. Null on releases made before this migration (their creator was not recorded)
        // and once the user is deleted: a release outlives its author, so the reference is cleared, not cascaded.
        await db.schema
          .alterTable('releases')
          .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
          .execute();
      },
    },
    '0008-device-update-failed': {
      async up(db: Kysely<unknown>) {
        // A report's `update_failed` (1/0): the balena Supervisor says a failed update this way, not in `status`.
        await db.schema
          .alterTable('devices')
          .addColumn('update_failed', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
      },
    },
    '0009-device-rollback': {
      async up(db: Kysely<unknown>) {
        // The self-rollback a device reports (JSON); null for devices that never rolled back, and for the balena
        // Supervisor, which never reports one.
        await db.schema.alterTable('devices').addColumn('rollback_json', 'text').execute();
      },
    },
    '0010-rollouts': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('rollouts')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('release_id', 'integer', (c) => c.notNull().references('releases.id').onDelete('cascade'))
          .addColumn('previous_release_id', 'integer', (c) => c.references('releases.id').onDelete('set null'))
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('plan_json', 'text', (c) => c.notNull())
          .addColumn('current_batch', 'integer', (c) => c.notNull())
          .addColumn('batch_opened_at', 'text')
          .addColumn('soak_ms', 'integer', (c) => c.notNull())
          .addColumn('offline_timeout_ms', 'integer', (c) => c.notNull())
          .addColumn('success_threshold', 'real', (c) => c.notNull())
          .addColumn('failure_threshold', 'real', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        // The fleet's latest rollout is read on every target-state computation of the fleet; the timer reads the
        // running ones each second.
        await db.schema.createIndex('rollouts_fleet_idx').on('rollouts').columns(['fleet_id', 'id']).execute();
        await db.schema.createIndex('rollouts_status_idx').on('rollouts').column('status').execute();
        await db.schema
          .createTable('rollout_devices')
          .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
          .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('batch', 'integer', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('healthy_since', 'text')
          .addColumn('reason', 'text')
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('rollout_devices_pk', ['rollout_id', 'device_id'])
          .execute();
        // A device's report looks up its rollouts.
        await db.schema.createIndex('rollout_devices_device_idx').on('rollout_devices').column('device_id').execute();
        await db.schema
          .createTable('rollout_events')
          .addColumn('id', id, pk)
          .addColumn('rollout_id', 'integer', (c) => c.notNull().references('rollouts.id').onDelete('cascade'))
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('batch', 'integer')
          .addColumn('message', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('rollout_policies')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('plan_json', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('rollout_policies_fleet_name', ['fleet_id', 'name'])
          .execute();
        await db.schema
          .createIndex('rollout_events_rollout_idx')
          .on('rollout_events')
          .columns(['rollout_id', 'id'])
          .execute();
      },
    },
    '0011-device-update-bytes': {
      async up(db: Kysely<unknown>) {
        // Bytes a device downloaded for its updates by delta, beside what plain pulls would have downloaded
        // (deltas/update-bytes.ts): the last update's (the release its last reported delta was for) and the totals.
        // One column per ALTER: SQLite adds one column per statement.
        const columns = [
          'update_bytes_downloaded',
          'update_pull_bytes',
          'total_bytes_downloaded',
          'total_pull_bytes',
        ] as const;
        await db.schema.alterTable('devices').addColumn('update_release', 'text').execute();
        for (const column of columns)
          await db.schema
            .alterTable('devices')
            .addColumn(column, 'bigint', (c) => c.notNull().defaultTo(0))
            .execute();
      },
    },
    '0012-update-windows': {
      async up(db: Kysely<unknown>) {
        // Maintenance windows (update-windows/): protocol updateWindowSchema as JSON, null for none; and the
        // opening a device last reported it waits for. One column per ALTER (SQLite).
        await db.schema.alterTable('fleets').addColumn('update_window_json', 'text').execute();
        await db.schema.alterTable('devices').addColumn('update_window_json', 'text').execute();
        await db.schema.alterTable('devices').addColumn('update_window_opens_at', 'text').execute();
      },
    },
    '0013-device-tag-ids': {
      async up(db: Kysely<unknown>) {
        // balena's device_tag has a numeric id, and the Supervisor's fetchDeviceTags selects it (its local API's
        // GET /v2/device/tags fails on a tag without one). SQLite cannot add a key column: the table is rebuilt.
        await db.schema
          .createTable('device_tags_next')
          .addColumn('id', id, pk)
          .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('value', 'text', (c) => c.notNull())
          .addUniqueConstraint('device_tags_device_key', ['device_id', 'key'])
          .execute();
        await sql`insert into device_tags_next (device_id, key, value)
          select device_id, key, value from device_tags order by device_id, key`.execute(db);
        await db.schema.dropTable('device_tags').execute();
        await db.schema.alterTable('device_tags_next').renameTo('device_tags').execute();
      },
    },
    '0014-target-change-triggers': {
      async up(db: Kysely<unknown>) {
        // Connected devices are told of a target change by the write that bumps a revision (db/revisions.ts), not
        // by re-reading every connected device (device-connection/target-watcher.ts). A trigger, not the write
        // sites, so no write can forget it; ids only. PostgreSQL delivers a NOTIFY at commit (never for a rollback)
        // to every node listening, this one included (node null: see bus/event-bus.ts). SQLite calls the function
        // db/database.ts registers on its connection. WARNING: another SQLite client (the sqlite3 shell) has no
        // such function, so an update of a revision there fails; every other column can be written.
        if (dialect === 'postgres') {
          // The payload is a bus message (bus/event-bus.ts busMessageSchema) on the bus channel.
          await sql`create function flotilla_targets_changed() returns trigger language plpgsql as $$
            begin
              perform pg_notify('flotilla_bus', json_build_object('node', null, 'message',
                json_build_object('type', 'targets-changed', 'kind', tg_argv[0], 'id', new.id))::text);
              return null;
            end $$`.execute(db);
        }
        for (const [table, kind] of [
          ['fleets', 'fleet'],
          ['devices', 'device'],
        ] as const) {
          const name = sql.raw(`${table}_targets_changed`);
          if (dialect === 'postgres') {
            await sql`create trigger ${name} after update of revision on ${sql.table(table)} for each row
              when (old.revision is distinct from new.revision) execute function flotilla_targets_changed(${sql.lit(kind)})`.execute(
              db,
            );
          } else {
            await sql`create trigger ${name} after update of revision on ${sql.table(table)} for each row
              when old.revision is not new.revision
              begin select flotilla_targets_changed(${sql.lit(kind)}, new.id); end`.execute(db);
          }
        }
      },
    },
    '0015-device-os-update': {
      async up(db: Kysely<unknown>) {
        // Where the device's host OS update stands (JSON, as reported); null for hosts without A/B updates and for
        // the balena Supervisor, which never reports one.
        await db.schema.alterTable('devices').addColumn('os_update_json', 'text').execute();
      },
    },
    '0016-os-releases': {
      async up(db: Kysely<unknown>) {
        // Host OS releases of an organization (os-releases/): the image is in the registry, this row says which.
        await db.schema
          .createTable('os_releases')
          .addColumn('id', id, pk)
          .addColumn('organization_id', 'integer', (c) =>
            c.notNull().references('organizations.id').onDelete('cascade'),
          )
          .addColumn('device_type', 'text', (c) => c.notNull())
          .addColumn('version', 'text', (c) => c.notNull())
          .addColumn('manifest_digest', 'text', (c) => c.notNull())
          .addColumn('image_sha256', 'text', (c) => c.notNull())
          .addColumn('image_size', 'bigint', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
          .addUniqueConstraint('os_releases_version_unique', ['organization_id', 'device_type', 'version'])
          .execute();
        // The OS the device must run; null: none asked. Deleting a release (not offered yet) leaves the device as is.
        await db.schema
          .alterTable('devices')
          .addColumn('target_os_release_id', 'integer', (c) => c.references('os_releases.id').onDelete('set null'))
          .execute();
      },
    },
    '0017-os-rollouts': {
      async up(db: Kysely<unknown>) {
        // Staged OS updates of a fleet (rollouts/os-rollouts.ts): the plan and thresholds of an app rollout, its
        // batches written into the devices' target_os_release_id as they open, so no overlay is needed.
        await db.schema
          .createTable('os_rollouts')
          .addColumn('id', id, pk)
          .addColumn('fleet_id', 'integer', (c) => c.notNull().references('fleets.id').onDelete('cascade'))
          // Cascade: the release cannot be deleted while the rollout still has a say (OS_RELEASE_IN_USE); the
          // history of a finished one goes with it.
          .addColumn('os_release_id', 'integer', (c) => c.notNull().references('os_releases.id').onDelete('cascade'))
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('reason', 'text')
          .addColumn('plan_json', 'text', (c) => c.notNull())
          .addColumn('current_batch', 'integer', (c) => c.notNull())
          .addColumn('batch_opened_at', 'text', (c) => c.notNull())
          .addColumn('soak_ms', 'integer', (c) => c.notNull())
          .addColumn('offline_timeout_ms', 'integer', (c) => c.notNull())
          .addColumn('success_threshold', 'real', (c) => c.notNull())
          .addColumn('failure_threshold', 'real', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('os_rollouts_fleet_idx').on('os_rollouts').columns(['fleet_id', 'id']).execute();
        await db.schema.createIndex('os_rollouts_status_idx').on('os_rollouts').column('status').execute();
        await db.schema
          .createTable('os_rollout_devices')
          .addColumn('os_rollout_id', 'integer', (c) => c.notNull().references('os_rollouts.id').onDelete('cascade'))
          .addColumn('device_id', 'integer', (c) => c.notNull().references('devices.id').onDelete('cascade'))
          .addColumn('batch', 'integer', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('healthy_since', 'text')
          .addColumn('reason', 'text')
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('os_rollout_devices_pk', ['os_rollout_id', 'device_id'])
          .execute();
        // A device's report looks up its OS rollouts.
        await db.schema
          .createIndex('os_rollout_devices_device_idx')
          .on('os_rollout_devices')
          .column('device_id')
          .execute();
        await db.schema
          .createTable('os_rollout_events')
          .addColumn('id', id, pk)
          .addColumn('os_rollout_id', 'integer', (c) => c.notNull().references('os_rollouts.id').onDelete('cascade'))
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('batch', 'integer')
          .addColumn('message', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('os_rollout_events_rollout_idx')
          .on('os_rollout_events')
          .columns(['os_rollout_id', 'id'])
          .execute();
      },
    },
    '0018-device-key-notices': {
      async up(db: Kysely<unknown>) {
        // The poll path keeps each device's identity in memory (device-api/poll-cache.ts), so whatever changes what
        // a poll checks is announced like a revision bump (0014): a new key, another fleet, and the row's deletion
        // (a fleet's deletion cascades here too). `targets-changed` for the device: the target watcher reads its
        // revisions again (nothing to tell when they did not move; a deleted device is simply not found).
        if (dialect === 'postgres') {
          await sql`create function flotilla_device_identity_changed() returns trigger language plpgsql as $$
            begin
              perform pg_notify('flotilla_bus', json_build_object('node', null, 'message',
                json_build_object('type', 'targets-changed', 'kind', 'device', 'id', old.id))::text);
              return null;
            end $$`.execute(db);
          await sql`create trigger devices_identity_changed after update of key_hash, fleet_id on devices for each row
            when (old.key_hash is distinct from new.key_hash or old.fleet_id is distinct from new.fleet_id)
            execute function flotilla_device_identity_changed()`.execute(db);
          await sql`create trigger devices_deleted after delete on devices for each row
            execute function flotilla_device_identity_changed()`.execute(db);
        } else {
          await sql`create trigger devices_identity_changed after update of key_hash, fleet_id on devices for each row
            when old.key_hash is not new.key_hash or old.fleet_id is not new.fleet_id
            begin select flotilla_targets_changed('device', old.id); end`.execute(db);
          await sql`create trigger devices_deleted after delete on devices for each row
            begin select flotilla_targets_changed('device', old.id); end`.execute(db);
        }
      },
    },
    '0019-fleet-os-target': {
      async up(db: Kysely<unknown>) {
        // The fleet's OS target (set for the whole fleet, or by an OS rollout that completed), so that a device
        // registered afterwards starts with it; the devices already there keep their own column as before.
        await db.schema
          .alterTable('fleets')
          .addColumn('target_os_release_id', 'integer', (c) => c.references('os_releases.id').onDelete('set null'))
          .execute();
      },
    },
  };
  return { getMigrations: async () => all };
}
