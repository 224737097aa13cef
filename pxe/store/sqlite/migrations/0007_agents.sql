-- The live agent of each host: the one boot whose host key lifeboat has
-- certified and that still reports. While it is alive (seen recently, not
-- ended by a hand-off), no other check-in for the host is certified.
CREATE TABLE agents (
  host     TEXT PRIMARY KEY,
  mac      TEXT NOT NULL,
  boot     TEXT NOT NULL,
  host_key TEXT NOT NULL,
  seen     TEXT NOT NULL,
  ended    INTEGER NOT NULL DEFAULT 0
);
