-- What each boot's agent found on its machine: the hardware report (JSON,
-- as the agent sent it once checked and bounded) and the warnings drawn from
-- it, one a line (devices without a driver, failing disks), which the boot's
-- record shows. One report a boot; its audit record commits its SHA-256.
CREATE TABLE boot_hardware (
  boot     TEXT PRIMARY KEY REFERENCES boots(id) ON DELETE CASCADE,
  host     TEXT NOT NULL,
  received TEXT NOT NULL,
  report   TEXT NOT NULL,
  warnings TEXT NOT NULL DEFAULT ''
);
CREATE INDEX boot_hardware_by_host ON boot_hardware (host, received);
