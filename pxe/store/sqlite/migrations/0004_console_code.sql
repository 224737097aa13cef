-- A console grant's one-time code, as a salted SHA-256 (agentapi.ConsoleCodeHash);
-- the code itself is shown once to the staff member who asked, never stored.
ALTER TABLE grants ADD COLUMN console_code_hash TEXT NOT NULL DEFAULT '';
