-- The 802.1Q tag of a host's boot network (0: untagged): iPXE and the RAM
-- image tag their frames with it, and the host's ip is its address there.
ALTER TABLE hosts ADD COLUMN vlan INTEGER NOT NULL DEFAULT 0;
