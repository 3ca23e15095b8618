-- 0022: settings every replica and every administrative command must agree on, kept where they all can read
-- them: public_url (where new hosts download install.sh) and install_script_sha256 (the SHA-256 of the
-- install.sh that public_url serves, printed in the install line by 'token create'). Written by 'serve' at start.
-- Not tenant-owned. All SQL lives in Store/ServerSettingStore.swift.

CREATE TABLE server_settings (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    value      text NOT NULL CHECK (length(value) <= 4096),
    updated_at timestamptz NOT NULL DEFAULT now()
);
