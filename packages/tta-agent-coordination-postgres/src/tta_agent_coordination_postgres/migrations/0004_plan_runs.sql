-- tta-agent-coordination-postgres: plan runs (issue 18), recorded by PostgresPlanRunStore.
-- Runs with search_path set to the store's schema; names are unqualified on purpose.
-- (0003 belongs to another feature; migrations apply by version, each once.)

-- The newest snapshot of each run. scope is the runtime's key prefix and instance
-- (run ids are unique within it); version is the run's Redis state version: a write only
-- replaces a row with a lower version, so snapshots may arrive late or twice.
CREATE TABLE plan_runs (
    scope      text NOT NULL,
    run_id     text NOT NULL,
    task       jsonb NOT NULL,
    status     text NOT NULL,
    mode       text NOT NULL,
    version    bigint NOT NULL,
    state      jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    PRIMARY KEY (scope, run_id)
);

-- unfinished_runs(): the live runs of a scope, oldest first.
CREATE INDEX plan_runs_live ON plan_runs (scope, created_at)
    WHERE status IN ('planning', 'running', 'reflecting');
-- runs(): newest first, optionally by status.
CREATE INDEX plan_runs_created ON plan_runs (created_at DESC);
CREATE INDEX plan_runs_status_created ON plan_runs (status, created_at DESC);
-- run(run_id) without a scope.
CREATE INDEX plan_runs_run_id ON plan_runs (run_id);

-- The run events, each once: (scope, run_id, version, ordinal) names an event (its
-- position among the events of that version), so recording a change twice is a no-op.
CREATE TABLE plan_run_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       text NOT NULL,
    run_id      text NOT NULL,
    version     bigint NOT NULL,
    ordinal     integer NOT NULL,
    kind        text NOT NULL,
    data        jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, run_id, version, ordinal)
);
