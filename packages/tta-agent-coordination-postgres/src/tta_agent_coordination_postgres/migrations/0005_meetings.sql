-- tta-agent-coordination-postgres: meetings (issue 16).
-- Runs with search_path set to the store's schema; names are unqualified on purpose.
-- Needs 0003 (organizations); independent of 0004, so it applies with or without it
-- (the runner applies every missing version, in order, also across a gap).

-- One row per meeting; status, turn and speaker follow its events.
CREATE TABLE meetings (
    meeting_id       text PRIMARY KEY,
    host             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('created', 'active', 'ended')),
    turn             integer NOT NULL DEFAULT 0 CHECK (turn >= 0),
    speaker          text,
    turn_duration_ms integer NOT NULL CHECK (turn_duration_ms > 0),
    max_turns        integer CHECK (max_turns IS NULL OR max_turns >= 1),
    end_reason       text,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    ended_at         timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meetings_open ON meetings (created_at) WHERE status <> 'ended';

-- Every participant and where it stands; join_order is its place in the round robin.
CREATE TABLE meeting_participants (
    meeting_id text NOT NULL REFERENCES meetings (meeting_id) ON DELETE CASCADE,
    agent_id   text NOT NULL,
    state      text NOT NULL CHECK (state IN ('invited', 'attending', 'left')),
    join_order integer,
    PRIMARY KEY (meeting_id, agent_id)
);

-- Every event once, ordered by its Redis stream id (event_ms, event_seq). No foreign
-- key: the CREATED event is written before the meeting's row.
CREATE TABLE meeting_events (
    meeting_id text NOT NULL,
    event_id   text NOT NULL,
    event_ms   bigint NOT NULL,
    event_seq  bigint NOT NULL,
    type       text NOT NULL CHECK (type IN ('created', 'joined', 'started', 'spoke',
        'turn_changed', 'timed_out', 'late', 'left', 'ended')),
    agent_id   text,
    turn       integer NOT NULL CHECK (turn >= 0),
    payload    jsonb,
    data       jsonb NOT NULL DEFAULT '{}',
    at         timestamptz NOT NULL,
    PRIMARY KEY (meeting_id, event_id)
);
CREATE INDEX meeting_events_order ON meeting_events (meeting_id, event_ms, event_seq);
