-- Every replay, patched replay and purge of `revstream dlq`: who, when, with which command line
-- and filter, which dead letters, and how it ended. Rows are only ever inserted and then finished
-- (outcome and counts set once the run ends); a run that was killed stays 'running'.
CREATE TABLE dlq_audit (
    audit_id      bigserial PRIMARY KEY,
    namespace     text NOT NULL,
    action        text NOT NULL CHECK (action IN ('replay', 'purge')),
    actor         text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    command_line  text NOT NULL,
    filter        jsonb NOT NULL,
    target        text,
    record_ids    text[] NOT NULL,
    record_count  integer NOT NULL CHECK (record_count >= 0),
    outcome       text NOT NULL,
    counts        jsonb NOT NULL DEFAULT '{}'::jsonb,
    patch         jsonb,
    diff          jsonb
);

CREATE INDEX dlq_audit_namespace_started ON dlq_audit (namespace, started_at);
CREATE INDEX dlq_audit_record_ids ON dlq_audit USING gin (record_ids);
