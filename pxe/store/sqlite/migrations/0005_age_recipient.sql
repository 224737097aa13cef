-- A customer's age recipient (public key): rescue shells' recordings of
-- their hosts are sealed to it.
ALTER TABLE customers ADD COLUMN age_recipient TEXT NOT NULL DEFAULT '';
