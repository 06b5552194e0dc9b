-- Version 2: the DPoP key binding of a refresh family (RFC 7638 thumbprint, RFC 9449
-- section 5), set once at creation; NULL for an unbound family.
ALTER TABLE refresh_families ADD COLUMN dpop_jkt BLOB CHECK (length(dpop_jkt) = 32);
