-- People who sign in to the web pages: users per tenant with a role, and their sessions.

-- A user's name is unique across tenants (it is all the sign-in form asks for besides the password), compared
-- without case. The password is kept only as a bcrypt hash.
CREATE TABLE users (
    tenant_id     uuid NOT NULL REFERENCES tenants(id),
    id            uuid NOT NULL,
    username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 128),
    role          text NOT NULL CHECK (role IN ('admin', 'read')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_username_unique ON users (lower(username));

-- A signed-in browser: the cookie holds a random token, this table only its SHA-256. Each session has its own
-- CSRF token, which every form it is shown carries back.
CREATE TABLE web_sessions (
    tenant_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    user_id     uuid NOT NULL,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, token_hash),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
