-- 009: "how sure are we" (issue 15). What the stored intervals resample, the paired test behind a
-- trained model's comparison with its parent, and the gaming probes' results for the Judges page.

-- 'question' (question-clustered bootstrap) or 'battle'; NULL on rows stored before 009 (battle).
ALTER TABLE ratings ADD COLUMN ci_kind VARCHAR;

-- bt rows: the permutation test's p-value (names swapped within questions) and the minimum
-- detectable BT difference at 80% power; win_rate rows: the per-question permutation p-value and
-- the minimum detectable win-rate gap. NULL for closed-set deltas and rows stored before 009.
ALTER TABLE parent_comparisons ADD COLUMN p_value DOUBLE;
ALTER TABLE parent_comparisons ADD COLUMN mde DOUBLE;

-- One row per `harness probe` run, panel and probe kind (append-only; readers take the latest).
CREATE TABLE probe_results (
    computed_at TIMESTAMP NOT NULL,
    suite_name VARCHAR NOT NULL,
    judge_name VARCHAR NOT NULL,
    dimension VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,              -- null | length | markdown
    probe_model VARCHAR NOT NULL,
    against VARCHAR NOT NULL,           -- the copied model, or for the null probe the weakest real model
    rating DOUBLE NOT NULL,             -- the probe's BT rating, raw
    controlled DOUBLE NOT NULL,         -- style-controlled
    against_rating DOUBLE NOT NULL,
    against_controlled DOUBLE NOT NULL,
    flagged BOOLEAN NOT NULL            -- the null probe outrates a real model
);
