-- 007: failed judge calls are rows of their own, never cached judgments; a per-store secret for
-- verdict tags; the original of any answer text that had to be repaired to be stored; judging counts
-- per run.

CREATE TABLE judge_failures (
    call_id VARCHAR NOT NULL,           -- the call that failed; it has no row in judgments, so a rerun retries it
    judge_name VARCHAR NOT NULL,
    judge_fingerprint VARCHAR NOT NULL,
    set_name VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    turn INTEGER NOT NULL,
    model_a VARCHAR NOT NULL,
    model_b VARCHAR,
    error VARCHAR NOT NULL,             -- transport error after the backend's retries (secrets redacted)
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Before 007 a transport failure was stored as an unparsed judgment with an empty output, and the
-- cache counted it as done. Those rows become failure rows, so the next run judges them again.
INSERT INTO judge_failures (call_id, judge_name, judge_fingerprint, set_name, question_id, turn, model_a,
                            model_b, error, run_id, created_at)
SELECT DISTINCT call_id, judge_name, judge_fingerprint, set_name, question_id, turn, model_a, model_b,
       'no output (stored as unparsed before migration 007)', run_id, created_at
FROM judgments
WHERE status = 'unparsed' AND raw_output = '' AND annotator IS NULL AND choice_lp_1 IS NULL;

DELETE FROM judgments
WHERE call_id IN (SELECT call_id FROM judgments
                  WHERE status = 'unparsed' AND raw_output = '' AND annotator IS NULL AND choice_lp_1 IS NULL);

CREATE TABLE store_settings (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- Verdict tags are an HMAC of the call under this salt: a candidate answer cannot know its judge
-- call's tag in advance, so it cannot write verdict lines the parser would read.
INSERT INTO store_settings
SELECT 'verdict_tag_salt', replace(uuid()::VARCHAR, '-', '') || replace(uuid()::VARCHAR, '-', '');

ALTER TABLE answers ADD COLUMN original_json VARCHAR;  -- NULL, or the exact original text as ASCII JSON when it had to be repaired
ALTER TABLE runs ADD COLUMN n_judge_calls INTEGER DEFAULT 0;
ALTER TABLE runs ADD COLUMN n_judge_cached INTEGER DEFAULT 0;
ALTER TABLE runs ADD COLUMN n_judge_failed INTEGER DEFAULT 0;
