-- What only the customer may give: their own SSH keys (an approval is a
-- signature by one of them), their time zone for notices, the staff who
-- may be granted their hosts, and operators' proposed changes waiting for
-- the customer.
ALTER TABLE customers ADD COLUMN keys TEXT NOT NULL DEFAULT '[]';
ALTER TABLE customers ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';

CREATE TABLE staff (
  customer TEXT NOT NULL REFERENCES customers(name),
  name     TEXT NOT NULL,
  role     TEXT NOT NULL,
  keys     TEXT NOT NULL,
  added    TEXT NOT NULL,
  PRIMARY KEY (customer, name)
);

CREATE TABLE proposals (
  id          TEXT PRIMARY KEY,
  customer    TEXT NOT NULL REFERENCES customers(name),
  kind        TEXT NOT NULL,
  target      TEXT NOT NULL,
  body        TEXT NOT NULL,
  summary     TEXT NOT NULL,
  proposed_by TEXT NOT NULL,
  created     TEXT NOT NULL,
  state       TEXT NOT NULL,
  decided_by  TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX proposals_customer ON proposals (customer, created);

-- A receiver's next notice is its oldest pending one (DueNotices).
CREATE INDEX notices_by_target ON notices (target, state, seq);

-- lifeboatd's signed heads of the audit chain (audit.Checkpoint).
CREATE TABLE checkpoints (
  seq  INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  time TEXT NOT NULL,
  sig  TEXT NOT NULL
);
