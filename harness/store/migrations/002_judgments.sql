-- 002: judgments (one row per judge call ordering and dimension) and computed ratings.

CREATE TABLE judgments (
    judgment_id VARCHAR PRIMARY KEY,    -- sha256(call_id, dimension)
    call_id VARCHAR NOT NULL,           -- sha256(judge fingerprint, item, order): the cache key of one call
    judge_name VARCHAR NOT NULL,
    judge_fingerprint VARCHAR NOT NULL, -- judge model + prompt version + params + parser version
    kind VARCHAR NOT NULL,              -- pairwise | single
    set_name VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    turn INTEGER NOT NULL,
    model_a VARCHAR NOT NULL,           -- shown in position A (or the graded model, for single)
    model_b VARCHAR,                    -- shown in position B; NULL for single grading
    answer_a VARCHAR NOT NULL,          -- answer_id of A's answer to `turn`
    answer_b VARCHAR,
    dimension VARCHAR NOT NULL,         -- overall | accuracy | helpfulness | language | ...
    verdict VARCHAR,                    -- A | B | tie (position-based); NULL unless pairwise and parsed
    score DOUBLE,                       -- 1-10 for single grading
    status VARCHAR NOT NULL,            -- ok | unparsed
    attempts INTEGER NOT NULL,          -- samples drawn until this output (1 = first try)
    raw_output VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE ratings (
    computed_at TIMESTAMP NOT NULL,
    suite_name VARCHAR NOT NULL,
    judge_name VARCHAR NOT NULL,
    dimension VARCHAR NOT NULL,
    category VARCHAR NOT NULL,          -- a question category, or 'all'
    method VARCHAR NOT NULL,            -- elo | bt | win_rate | lc_win_rate | mean_grade
    model VARCHAR NOT NULL,
    rating DOUBLE NOT NULL,
    ci_low DOUBLE,
    ci_high DOUBLE,
    level DOUBLE,                       -- confidence level of [ci_low, ci_high]
    battles INTEGER NOT NULL,
    merge_policy VARCHAR NOT NULL
);
