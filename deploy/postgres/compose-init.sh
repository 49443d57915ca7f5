#!/bin/sh
# Compose, at the database's first start: the admin script's login role, a member of
# assetsync_status, which `python -m worker migrate` then grants exactly what following
# runs needs (docs/security.md). The password comes from .env.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$ASSETSYNC_ADMIN_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE assetsync_status NOLOGIN;
CREATE ROLE assetsync_console NOLOGIN;
CREATE ROLE assetsync_admin LOGIN PASSWORD :'pw' IN ROLE assetsync_status;
SQL
