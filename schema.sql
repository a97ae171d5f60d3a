-- MyloWare SQLite schema. Each migration starts with a line `-- migration N: description`
-- and runs, with every other pending one, in one transaction (`myloware migrate`, or at
-- start-up). Migrations are append-only: never edit one that has shipped; add the next.
-- A database whose version is newer than the binary's last migration is refused.

-- migration 1: schema version table and the health probe row
CREATE TABLE schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);

CREATE TABLE health_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  TEXT NOT NULL,
    pid INTEGER NOT NULL
);
