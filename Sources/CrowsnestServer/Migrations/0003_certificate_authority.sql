-- 0003: the certificate authority lives in the database, so every replica and every administrative command
-- sees the same CA and pin. Released migrations are never edited: add a new numbered file instead.

CREATE TABLE certificate_authority (
    -- One CA per installation.
    id                  smallint PRIMARY KEY CHECK (id = 1),
    certificate_pem     text NOT NULL,
    -- The CA's private key (PKCS#8 PEM) sealed with AES-256-GCM under the key from secret_key_file.
    sealed_private_key  bytea NOT NULL,
    -- Which secret key sealed it (SecretKey.fingerprint), so a wrong secret_key_file is named as such.
    secret_fingerprint  text NOT NULL,
    -- sha256:<hex> of the CA certificate's DER: what `token create` prints and agents pin.
    pin                 text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
