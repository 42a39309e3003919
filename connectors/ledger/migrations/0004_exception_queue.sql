-- The exception queue finance works from: one row per exception key (the revisions of one
-- reconciliation mismatch share a key and collapse into one row), routed to a team with a due
-- time, plus an audit row for every change, written in the same transaction as the change.
-- The exceptions consumer stores its offsets in sink_offsets under its own consumer group.

CREATE TABLE exceptions (
    exception_key      text PRIMARY KEY,
    exception_id       text NOT NULL,
    reason_code        text NOT NULL,
    status             text NOT NULL CHECK (status IN ('open', 'assigned', 'resolved', 'approved')),
    customer_id        text NOT NULL,
    legal_entity       text NOT NULL,
    event_type         text NOT NULL,
    source_event_id    text NOT NULL,
    correlation_id     text NOT NULL,
    subscription_id    text,
    quote_id           text,
    amount_minor       bigint,
    currency           char(3),
    quantity_difference bigint,
    detail             text NOT NULL,
    revision           integer NOT NULL DEFAULT 0,
    team               text NOT NULL,
    assignee           text,
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    due_at             timestamptz NOT NULL,
    closed_at          timestamptz,
    source_topic       text NOT NULL,
    source_partition   integer NOT NULL,
    source_offset      bigint NOT NULL,
    CONSTRAINT exceptions_closed_when_done CHECK ((status IN ('resolved', 'approved')) = (closed_at IS NOT NULL))
);

CREATE INDEX exceptions_open_by_team ON exceptions (team, first_seen) WHERE closed_at IS NULL;

CREATE TABLE exception_audit (
    audit_id      bigserial PRIMARY KEY,
    exception_key text NOT NULL REFERENCES exceptions (exception_key),
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,
    from_status   text,
    to_status     text NOT NULL,
    note          text,
    exception_id  text
);

CREATE INDEX exception_audit_by_key ON exception_audit (exception_key, audit_id);

-- What waits on an exception: an order held for a discount approval and the invoices and payments
-- of its subscription. Written from the worker's hold notices; released when the approval lands.
CREATE TABLE exception_holds (
    exception_key   text NOT NULL,
    source_event_id text NOT NULL,
    event_type      text NOT NULL,
    subscription_id text,
    amount_minor    bigint,
    currency        char(3),
    reason          text NOT NULL,
    held_at         timestamptz NOT NULL,
    released_at     timestamptz,
    PRIMARY KEY (exception_key, source_event_id)
);

CREATE INDEX exception_holds_waiting ON exception_holds (exception_key) WHERE released_at IS NULL;
