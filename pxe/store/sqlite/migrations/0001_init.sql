-- lifeboat store, version 1. Portable SQL: it runs on SQLite and PostgreSQL.
-- Times are UTC text, fixed width (sortable); lists are JSON text.

CREATE TABLE customers (
    name         TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    emails       TEXT NOT NULL DEFAULT '[]',
    created      TEXT NOT NULL
);

CREATE TABLE hosts (
    name            TEXT PRIMARY KEY,
    customer        TEXT REFERENCES customers(name),
    ip              TEXT NOT NULL UNIQUE,
    prefix          INTEGER NOT NULL,
    gateway         TEXT NOT NULL DEFAULT '',
    dns             TEXT NOT NULL DEFAULT '[]',
    mode            TEXT NOT NULL,
    circuit_id      TEXT UNIQUE,
    authorized_keys TEXT NOT NULL,
    created         TEXT NOT NULL,
    updated         TEXT NOT NULL
);

-- Every MAC a host may PXE-boot from; primary is the one its boots are keyed by.
CREATE TABLE host_macs (
    mac     TEXT PRIMARY KEY,
    host    TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
    primary_mac INTEGER NOT NULL
);

CREATE TABLE boots (
    id       TEXT PRIMARY KEY,
    host     TEXT NOT NULL,
    mac      TEXT NOT NULL,
    firmware TEXT NOT NULL,
    started  TEXT NOT NULL,
    stage    TEXT NOT NULL
);
CREATE INDEX boots_by_host ON boots (host, started);
CREATE INDEX boots_by_started ON boots (started);

CREATE TABLE boot_stages (
    boot  TEXT NOT NULL REFERENCES boots(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    at    TEXT NOT NULL,
    PRIMARY KEY (boot, stage)
);

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,
    time    TEXT NOT NULL,
    code    TEXT NOT NULL,
    mac     TEXT NOT NULL DEFAULT '',
    host    TEXT NOT NULL DEFAULT '',
    boot    TEXT NOT NULL DEFAULT '',
    actor   TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_host ON events (host, seq);

-- One-time boot tokens, by SHA-256 only.
CREATE TABLE boot_tokens (
    hash    TEXT PRIMARY KEY,
    mac     TEXT NOT NULL,
    host    TEXT NOT NULL,
    boot    TEXT NOT NULL,
    expires TEXT NOT NULL,
    used    INTEGER NOT NULL DEFAULT 0
);

-- Operators of the API, each with their own token, by SHA-256 only.
CREATE TABLE operators (
    name       TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created    TEXT NOT NULL
);
