-- A boot token remembers the check-in it was redeemed by, so that the same
-- agent retrying (same token, same host key; the first answer lost on the
-- wire) gets the same answer instead of a refusal. The certificate is
-- public; the report token is not kept: a retry gets a new one, and the
-- report tokens of the lost answer (boot_token) are revoked.
ALTER TABLE boot_tokens ADD COLUMN host_key TEXT NOT NULL DEFAULT '';
ALTER TABLE boot_tokens ADD COLUMN mode TEXT NOT NULL DEFAULT '';
ALTER TABLE boot_tokens ADD COLUMN host_cert TEXT NOT NULL DEFAULT '';
ALTER TABLE boot_tokens ADD COLUMN grant_id TEXT NOT NULL DEFAULT '';
ALTER TABLE report_tokens ADD COLUMN boot_token TEXT NOT NULL DEFAULT '';
