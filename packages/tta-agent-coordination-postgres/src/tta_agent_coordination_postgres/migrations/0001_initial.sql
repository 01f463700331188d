-- tta-agent-coordination-postgres: the initial schema.
-- Runs with search_path set to the store's schema; names are unqualified on purpose.

-- The agent directory: every agent that ever registered.
CREATE TABLE agents (
    agent_id        text PRIMARY KEY,
    agent_type      text NOT NULL,
    instance        text NOT NULL,
    name            text,
    capabilities    jsonb NOT NULL DEFAULT '[]'::jsonb,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    deregistered_at timestamptz
);

-- One row per message and recipient. (incarnation, attempts, rank) is the version of the
-- row's state: an event only changes it when its version is higher, so events may arrive
-- in any order and twice. seq orders rows by their first record (never timestamps).
CREATE TABLE messages (
    message_id     text NOT NULL,
    recipient      text NOT NULL,
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    sender         text,
    correlation_id text,
    message_type   text,
    priority       smallint,
    envelope       jsonb,
    status         text NOT NULL
        CHECK (status IN ('queued', 'leased', 'acked', 'retrying', 'dead')),
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text,
    failure        text,
    incarnation    bigint NOT NULL,
    rank           smallint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    settled_at     timestamptz,
    PRIMARY KEY (message_id, recipient)
);

-- history(): messages received by / sent by an agent, in order.
CREATE INDEX messages_recipient_seq ON messages (recipient, seq);
CREATE INDEX messages_sender_seq ON messages (sender, seq);
-- conversation()
CREATE INDEX messages_correlation_seq ON messages (correlation_id, seq)
    WHERE correlation_id IS NOT NULL;
-- restore(): the unsettled messages, in order.
CREATE INDEX messages_unsettled_seq ON messages (seq)
    WHERE status IN ('queued', 'leased', 'retrying');
-- dead()
CREATE INDEX messages_dead_seq ON messages (recipient, seq) WHERE status = 'dead';
-- prune()
CREATE INDEX messages_settled_at ON messages (settled_at) WHERE settled_at IS NOT NULL;

-- The event log: every lifecycle step once (the unique key makes a re-write a no-op and
-- serves the per-message lookup of get() and prune()).
CREATE TABLE message_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  text NOT NULL,
    recipient   text NOT NULL,
    kind        text NOT NULL,
    status      text NOT NULL,
    incarnation bigint NOT NULL,
    attempts    integer NOT NULL,
    error       text,
    failure     text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (message_id, recipient, incarnation, attempts, kind)
);
