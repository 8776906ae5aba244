#!/bin/bash
# The database user the workers connect as (DJ_USER / DJ_PASS in .env), with only what a worker needs:
# on the recipe's schema (SCHEMA) and nnfabrik's core schema, read and write rows, create the schema and
# its tables (CREATE, REFERENCES and INDEX for the foreign keys); nothing on other schemas, no DROP, no
# GRANT, no server-wide privilege. The database's root user stays with the db service (DB_ROOT_PASS).
#
# The MariaDB image runs this once, when it initialises an empty data volume: docker-compose.yml mounts
# docker/db-init at /docker-entrypoint-initdb.d and passes the variables below. To change the user later,
# run the same statements as root (or remove the db-data volume, which deletes the database).
set -euo pipefail
: "${WORKER_USER:?set DJ_USER in .env}" "${WORKER_PASS:?set DJ_PASS in .env}" "${WORKER_SCHEMA:?set SCHEMA in .env}"
WORKER_CORE_SCHEMA="${WORKER_CORE_SCHEMA:-nnfabrik_core}"
if [ "$WORKER_USER" = root ]; then
  echo "DJ_USER must not be root: workers connect as a user of their own (see .env.example)" >&2
  exit 1
fi

docker_process_sql --database=mysql <<SQL
CREATE USER IF NOT EXISTS '${WORKER_USER}'@'%' IDENTIFIED BY '${WORKER_PASS}';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, REFERENCES, INDEX ON \`${WORKER_SCHEMA}\`.* TO '${WORKER_USER}'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, REFERENCES, INDEX ON \`${WORKER_CORE_SCHEMA}\`.* TO '${WORKER_USER}'@'%';
SQL
