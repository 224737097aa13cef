-- lifeboat store, version 2: the audit chain, customers' own API tokens,
-- webhooks and the notice outbox.

-- Every event is a record of a hash chain (see pxe/audit): salt, the hash of
-- the record before it, and its own. customer is the owner of the host when
-- the record was written, so that a customer reads the records of the hosts
-- they held at the time, and no others.
ALTER TABLE events ADD COLUMN customer TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN salt TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN prev TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN hash TEXT NOT NULL DEFAULT '';
CREATE INDEX events_by_customer ON events (customer, seq);

-- A token whose customer is set belongs to that customer, not to an
-- operator: it reads that customer's audit records and nothing else.
ALTER TABLE operators ADD COLUMN customer TEXT NOT NULL DEFAULT '';

-- Customers' webhooks. The signing secret is sealed with the server's
-- secret key (a file beside the database), so that a copy of the database
-- alone cannot forge notices.
CREATE TABLE webhooks (
    id       TEXT PRIMARY KEY,
    customer TEXT NOT NULL REFERENCES customers(name) ON DELETE CASCADE,
    url      TEXT NOT NULL,
    sealed   TEXT NOT NULL,
    created  TEXT NOT NULL
);

-- The outbox: one row per notice and channel, written in the transaction of
-- the audit record it reports. id is the webhook-id and Message-ID: the
-- same on every attempt, so that a receiver can drop duplicates.
CREATE TABLE notices (
    id         TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL REFERENCES events(seq),
    customer   TEXT NOT NULL,
    channel    TEXT NOT NULL,
    target     TEXT NOT NULL,
    created    TEXT NOT NULL,
    next_try   TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL DEFAULT 'pending',
    done       TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notices_due ON notices (state, next_try);

-- Report tokens: what an agent, once checked in, reports its boot's events
-- with; by SHA-256 only. Kept here rather than in memory so that a restart
-- of lifeboatd does not cut off the customer at the unlock prompt.
CREATE TABLE report_tokens (
    hash    TEXT PRIMARY KEY,
    mac     TEXT NOT NULL,
    host    TEXT NOT NULL,
    boot    TEXT NOT NULL,
    expires TEXT NOT NULL
);
