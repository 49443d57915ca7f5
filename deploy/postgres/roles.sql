-- Login roles for what only follows runs (docs/security.md: who may read what). Run once
-- per PostgreSQL cluster as a superuser or a role with CREATEROLE, after
-- `python -m worker migrate` (which creates the group roles assetsync_status and
-- assetsync_console and grants them exactly what they need; if the migrating role may
-- not create roles, create those two first: CREATE ROLE assetsync_status NOLOGIN; ...).
-- Set each password afterwards (psql: \password assetsync_admin), then give the admin
-- script and the scheduled sync postgresql://assetsync_admin:…@host/assetsync as
-- ASSETSYNC_DATABASE_URL, and the console assetsync_console_app's.
CREATE ROLE assetsync_admin LOGIN IN ROLE assetsync_status;
CREATE ROLE assetsync_console_app LOGIN IN ROLE assetsync_console;
