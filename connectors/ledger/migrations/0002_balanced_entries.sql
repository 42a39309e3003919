-- Double entry as a database guarantee: at commit, every journal entry touched by the
-- transaction has lines, and per currency its debits equal its credits. The triggers are
-- deferred because an entry's lines arrive one row at a time; checking each row as it lands
-- would reject every entry before its last line.

CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    target text := COALESCE(NEW.entry_id, OLD.entry_id);
    line_count bigint;
    bad_currency text;
    bad record;
BEGIN
    -- One query on the happy path: it runs once per line of every entry written.
    SELECT coalesce(sum(s.lines), 0), min(s.currency) FILTER (WHERE s.debits <> s.credits)
      INTO line_count, bad_currency
      FROM (SELECT currency, count(*) AS lines, sum(debit_minor) AS debits, sum(credit_minor) AS credits
              FROM journal_lines WHERE entry_id = target GROUP BY currency) AS s;
    IF bad_currency IS NOT NULL THEN
        SELECT sum(debit_minor) AS debits, sum(credit_minor) AS credits INTO bad
          FROM journal_lines WHERE entry_id = target AND currency = bad_currency;
        RAISE EXCEPTION 'journal entry % does not balance in %: debits % <> credits %',
                target, bad_currency, bad.debits, bad.credits
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_entry_balanced';
    END IF;
    -- No lines left is fine only when the entry itself is gone too.
    IF line_count = 0 AND EXISTS (SELECT 1 FROM journal_entries WHERE entry_id = target) THEN
        RAISE EXCEPTION 'journal entry % has no lines', target
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_entry_balanced';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER journal_lines_balanced
    AFTER INSERT OR UPDATE OR DELETE ON journal_lines
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();

CREATE CONSTRAINT TRIGGER journal_entries_balanced
    AFTER INSERT OR UPDATE ON journal_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();
