-- A rotated token remembers its successor, sealed with a key only the rotated token
-- itself yields (the database never holds a usable token), so a client that lost the
-- response and retries within the grace window gets the same successor back.
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed TEXT;
