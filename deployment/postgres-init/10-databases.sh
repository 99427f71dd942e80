#!/usr/bin/env bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d): one database
# and one user each for the source system, the Dagster instance and the audit log, from the
# environment docker-compose.yml gives the postgres service. Values are passed to psql as variables
# (quoted by psql), never pasted into the SQL.
set -euo pipefail

create() {  # database, user, password
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v db="$1" -v owner="$2" -v password="$3" <<'SQL'
CREATE ROLE :"owner" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
}

create "$SOURCE_DB_NAME" "$SOURCE_DB_USER" "$SOURCE_DB_PASSWORD"
create "$DAGSTER_DB_NAME" "$DAGSTER_DB_USER" "$DAGSTER_DB_PASSWORD"
create "$AUDIT_DB_NAME" "$AUDIT_DB_USER" "$AUDIT_DB_PASSWORD"
