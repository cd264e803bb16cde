-- 005: what decides which judgments count, as rows and columns instead of guesses from text.
-- `judges` registers every judge fingerprint a run used, like `models` does for model fingerprints:
-- a judge name's current fingerprints are the ones registered last (harness.battles). Choice
-- log-likelihoods (likelihood-choice judges) and a person's annotation become columns; the rows
-- written before this migration are filled from the text they kept.

CREATE TABLE judges (
    name VARCHAR NOT NULL,              -- judge name in the suite
    fingerprint VARCHAR NOT NULL,       -- judge model + prompts + params + parser (+ resample number)
    kind VARCHAR NOT NULL,              -- pairwise | single
    spec_json VARCHAR NOT NULL,         -- the judge spec as written ('{}' for rows backfilled here)
    first_seen TIMESTAMP NOT NULL,
    last_used TIMESTAMP NOT NULL,       -- fingerprints registered together share it (repeats of a grader)
    PRIMARY KEY (name, fingerprint)
);

INSERT INTO judges
SELECT judge_name, judge_fingerprint, any_value(kind), '{}', min(created_at), max(created_at)
FROM judgments WHERE judge_name NOT LIKE 'human:%' GROUP BY judge_name, judge_fingerprint;

ALTER TABLE judgments ADD COLUMN choice_lp_1 DOUBLE;      -- log P("1"): the first-shown answer is better
ALTER TABLE judgments ADD COLUMN choice_lp_2 DOUBLE;      -- log P("2")
ALTER TABLE judgments ADD COLUMN choice_lp_tie DOUBLE;    -- log P("Tie")
ALTER TABLE judgments ADD COLUMN annotator VARCHAR;       -- human verdicts: the person (judge 'human:<annotator>')
ALTER TABLE judgments ADD COLUMN note VARCHAR;            -- human verdicts: the person's note
ALTER TABLE judgments ADD COLUMN queue_reason VARCHAR;    -- human verdicts: why the battle was queued

UPDATE judgments SET
    choice_lp_1 = CAST(regexp_extract(raw_output, '\(chosen by likelihood: 1=(\S+), 2=(\S+), Tie=(\S+)\)', 1) AS DOUBLE),
    choice_lp_2 = CAST(regexp_extract(raw_output, '\(chosen by likelihood: 1=(\S+), 2=(\S+), Tie=(\S+)\)', 2) AS DOUBLE),
    choice_lp_tie = CAST(regexp_extract(raw_output, '\(chosen by likelihood: 1=(\S+), 2=(\S+), Tie=(\S+)\)', 3) AS DOUBLE)
WHERE judge_name NOT LIKE 'human:%' AND regexp_matches(raw_output, '\(chosen by likelihood: 1=\S+, 2=\S+, Tie=\S+\)');

UPDATE judgments SET
    annotator = substr(judge_name, 7),
    note = coalesce(json_extract_string(raw_output, '$.note'), ''),
    queue_reason = json_extract_string(raw_output, '$.reason'),
    raw_output = ''
WHERE judge_name LIKE 'human:%' AND json_valid(raw_output);
