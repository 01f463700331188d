-- tta-agent-coordination-postgres: agent conversations (issue 15).
-- Runs with search_path set to the store's schema; names are unqualified on purpose.

-- Organizations: namespaces of agents (AgentMessaging.register_organization).
CREATE TABLE organizations (
    org_id       text PRIMARY KEY,
    name         text NOT NULL,
    accepts_from text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- An agent's organization (NULL for agents only the registry knows).
ALTER TABLE agents ADD COLUMN org_id text REFERENCES organizations (org_id) ON DELETE SET NULL;

-- One row per opening of a pair's sync conversation: conversation_id is
-- "<pair_id>-<epoch>", so a pair that ended may open again (a new row; the original
-- SDK's UNIQUE(pair) forbade that). The pair is stored sorted.
CREATE TABLE conversations (
    conversation_id text PRIMARY KEY,
    pair_id         text NOT NULL,
    agent_a         text NOT NULL,
    agent_b         text NOT NULL,
    status          text NOT NULL CHECK (status IN ('open', 'ended')),
    opened_at       timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    CHECK (agent_a < agent_b)
);
CREATE INDEX conversations_pair ON conversations (pair_id, opened_at);
CREATE INDEX conversations_open ON conversations (opened_at) WHERE status = 'open';

-- Every conversation message (one-way, sync, reply, inbox, end marker), once per id.
-- seq orders them (never timestamps); read_at is set when an inbox message is read.
CREATE TABLE conversation_messages (
    message_id      text PRIMARY KEY,
    seq             bigint GENERATED ALWAYS AS IDENTITY,
    kind            text NOT NULL
        CHECK (kind IN ('one_way', 'sync', 'reply', 'async', 'ended')),
    conversation_id text NOT NULL,
    pair_id         text NOT NULL,
    sender          text NOT NULL,
    recipient       text NOT NULL,
    payload         jsonb,
    sent_at         timestamptz NOT NULL,
    read_at         timestamptz
);
CREATE INDEX conversation_messages_pair ON conversation_messages (pair_id, seq);
CREATE INDEX conversation_messages_unread ON conversation_messages (recipient, seq)
    WHERE kind = 'async' AND read_at IS NULL;

-- The inboxes: the asynchronous messages, read or not.
CREATE VIEW inbox_messages AS
    SELECT message_id, seq, conversation_id, sender, recipient, payload, sent_at, read_at
    FROM conversation_messages WHERE kind = 'async';

-- The conversation id of a queue message that carries a conversation message (one-way
-- and send-and-wait messages travel through the coordinator's queues).
ALTER TABLE messages ADD COLUMN conversation_id text
    GENERATED ALWAYS AS (envelope -> 'payload' -> 'message' ->> 'conversation_id') STORED;
CREATE INDEX messages_conversation ON messages (conversation_id)
    WHERE conversation_id IS NOT NULL;
