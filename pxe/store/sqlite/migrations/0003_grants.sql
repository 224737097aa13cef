-- lifeboat store, version 3: rescue grants and customers' policies.

-- A grant: one staff member, one host, one scope, one ticket, a window of
-- hours. Nothing secret is kept: the approval link is signed with the
-- server's secret key and dies with the decision.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    customer    TEXT NOT NULL,
    staff       TEXT NOT NULL,
    staff_key   TEXT NOT NULL,
    ticket      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    policy      TEXT NOT NULL,
    state       TEXT NOT NULL,
    valid_from  TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    created     TEXT NOT NULL,
    decided     TEXT NOT NULL DEFAULT '',
    decided_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX grants_by_host ON grants (host, created);
CREATE INDEX grants_open ON grants (state, valid_until);

-- Per customer and scope: approve (wait for the customer) or notify.
CREATE TABLE policies (
    customer TEXT NOT NULL REFERENCES customers(name) ON DELETE CASCADE,
    scope    TEXT NOT NULL,
    policy   TEXT NOT NULL,
    PRIMARY KEY (customer, scope)
);
