#!/usr/bin/env bash
# Installs (when missing) and starts a local PostgreSQL server from Debian's packages for the test suite, then
# prints a connection URL for a superuser role made for the tests. Used by .ci/run; handy for developers too:
#   export FLOTILLA_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
su postgres -c "psql -q -p $port -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='flotilla_test') THEN CREATE ROLE flotilla_test LOGIN SUPERUSER PASSWORD 'flotilla_test'; END IF; END \\\$\\\$;\"" >&2
echo "postgres://flotilla_test:flotilla_test@127.0.0.1:$port/postgres"
