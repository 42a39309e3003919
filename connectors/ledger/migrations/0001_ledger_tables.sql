-- The ERP ledger: master copies, receivables, cash, the general ledger, revenue plans and
-- collections, plus the sink's own bookkeeping (applied commands and consumer offsets).
-- Money is integer minor units (bigint) next to its ISO-4217 currency; never floats.
-- Rows that a command creates carry command_id, source_event_id and correlation_id so every
-- ledger row traces back to the event that caused it.

CREATE TABLE applied_commands (
    command_id      text PRIMARY KEY,
    command_type    text NOT NULL,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    issued_at       timestamptz NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sink_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint NOT NULL CHECK (next_offset >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

CREATE TABLE customers (
    customer_id      text PRIMARY KEY,
    legal_entity     text NOT NULL,
    first_command_id text NOT NULL
);

CREATE TABLE subscriptions (
    subscription_id text PRIMARY KEY,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    order_id        text,
    status          text NOT NULL,
    currency        char(3) NOT NULL,
    term_start      date NOT NULL,
    term_end        date NOT NULL,
    version         bigint NOT NULL CHECK (version >= 0),
    command_id      text NOT NULL,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL,
    CONSTRAINT subscriptions_term_order CHECK (term_end > term_start)
);

CREATE TABLE invoices (
    invoice_id      text PRIMARY KEY,
    subscription_id text NOT NULL,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    currency        char(3) NOT NULL,
    issued_on       date NOT NULL,
    due_date        date NOT NULL,
    total_minor     bigint NOT NULL CHECK (total_minor >= 0),
    command_id      text NOT NULL UNIQUE,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL
);

CREATE TABLE invoice_lines (
    invoice_id       text NOT NULL REFERENCES invoices (invoice_id),
    line_id          text NOT NULL,
    kind             text NOT NULL,
    product_id       text,
    metric           text,
    quantity         bigint NOT NULL CHECK (quantity >= 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    amount_minor     bigint NOT NULL CHECK (amount_minor >= 0),
    period_start     date NOT NULL,
    period_end       date NOT NULL,
    PRIMARY KEY (invoice_id, line_id),
    CONSTRAINT invoice_lines_period_order CHECK (period_end >= period_start)
);

CREATE TABLE payments (
    payment_id      text PRIMARY KEY,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    currency        char(3) NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor >= 0),
    received_at     timestamptz NOT NULL,
    command_id      text NOT NULL UNIQUE,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL
);

CREATE TABLE payment_applications (
    payment_id    text NOT NULL REFERENCES payments (payment_id),
    invoice_id    text NOT NULL,
    currency      char(3) NOT NULL,
    amount_minor  bigint NOT NULL,
    applied_minor bigint NOT NULL CHECK (applied_minor >= 0),
    excess_minor  bigint NOT NULL CHECK (excess_minor >= 0),
    command_id    text NOT NULL,
    PRIMARY KEY (payment_id, invoice_id),
    -- What was received is either applied to the invoice or credited to the customer.
    CONSTRAINT payment_applications_split CHECK (applied_minor + excess_minor = amount_minor)
);
CREATE INDEX payment_applications_invoice ON payment_applications (invoice_id);

CREATE TABLE journal_entries (
    entry_id        text PRIMARY KEY,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    currency        char(3) NOT NULL,
    posting_date    date NOT NULL,
    description     text NOT NULL,
    command_id      text NOT NULL UNIQUE,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL
);

CREATE TABLE journal_lines (
    entry_id        text NOT NULL REFERENCES journal_entries (entry_id),
    line_no         integer NOT NULL CHECK (line_no >= 0),
    account         text NOT NULL,
    debit_minor     bigint NOT NULL CHECK (debit_minor >= 0),
    credit_minor    bigint NOT NULL CHECK (credit_minor >= 0),
    currency        char(3) NOT NULL,
    legal_entity    text NOT NULL,
    posting_date    date NOT NULL,
    memo            text,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL,
    command_id      text NOT NULL,
    PRIMARY KEY (entry_id, line_no),
    -- A line is a debit or a credit, never both.
    CONSTRAINT journal_lines_one_side CHECK (debit_minor = 0 OR credit_minor = 0)
);
CREATE INDEX journal_lines_account ON journal_lines (legal_entity, currency, account);

-- One row per schedule id: the version in force. Every version's months stay in
-- revenue_schedule_entries under its own command_id, so a re-spread keeps the history.
CREATE TABLE revenue_schedules (
    schedule_id     text PRIMARY KEY,
    subscription_id text NOT NULL,
    invoice_id      text,
    line_id         text NOT NULL,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    currency        char(3) NOT NULL,
    total_minor     bigint NOT NULL CHECK (total_minor >= 0),
    issued_at       timestamptz NOT NULL,
    command_id      text NOT NULL,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL
);

CREATE TABLE revenue_schedule_entries (
    command_id       text NOT NULL,
    schedule_id      text NOT NULL,
    month            text NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    recognition_date date NOT NULL,
    amount_minor     bigint NOT NULL CHECK (amount_minor >= 0),
    currency         char(3) NOT NULL,
    PRIMARY KEY (command_id, month)
);
CREATE INDEX revenue_schedule_entries_schedule ON revenue_schedule_entries (schedule_id);

CREATE TABLE collections_cases (
    case_id         text PRIMARY KEY,
    invoice_id      text NOT NULL,
    payment_id      text NOT NULL,
    customer_id     text NOT NULL,
    legal_entity    text NOT NULL,
    status          text NOT NULL,
    status_rank     integer NOT NULL,
    attempt         integer NOT NULL CHECK (attempt >= 0),
    amount_minor    bigint NOT NULL CHECK (amount_minor >= 0),
    currency        char(3) NOT NULL,
    reason          text NOT NULL,
    command_id      text NOT NULL,
    source_event_id text NOT NULL,
    correlation_id  text NOT NULL
);
