#!/usr/bin/env bash
# Installs PostgreSQL 15 from Debian's packages if missing, starts the default cluster, creates a role and
# database for the tests, and prints the environment the tests read:
#   bash .ci/start-postgres.sh >/tmp/pg.env && . /tmp/pg.env
# TEST_POSTGRES_URL is a DSN with rights to create schemas: each test makes its own schema.
set -euo pipefail

version=15
role=berth_test
database=berth_test
password=berth_test

if ! command -v pg_ctlcluster >/dev/null || [ ! -d "/usr/lib/postgresql/$version" ]; then
  echo "installing postgresql $version" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2
fi
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 50); do
  if su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1; then break; fi
  sleep 0.2
done

su postgres -c "psql -v ON_ERROR_STOP=1 -qtA" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
    CREATE ROLE $role LOGIN PASSWORD '$password';
  END IF;
END \$\$;
SQL
if ! su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = '$database'\"" | grep -q 1; then
  su postgres -c "createdb -O $role $database" >&2
fi

echo "export TEST_POSTGRES_URL=postgres://$role:$password@127.0.0.1:5432/$database"
