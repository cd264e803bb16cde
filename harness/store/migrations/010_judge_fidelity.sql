-- 010: judge fidelity on any labelled benchmark (issue 14). Metrics per subset, the cost and time
-- of each judged item, and what the Judges page's evaluator card needs from a run.

-- Runs: a judge kind's card notes (e.g. a template that is not injection-safe), whether the
-- benchmark's gold labels include ties (3-way), and the totals behind the per-1,000 metrics.
-- NULL on runs stored before 010 (and tokens/cost where the judge or the price table gives none).
ALTER TABLE judge_eval_runs ADD COLUMN notes VARCHAR[];
ALTER TABLE judge_eval_runs ADD COLUMN three_way BOOLEAN;
ALTER TABLE judge_eval_runs ADD COLUMN tokens_in BIGINT;
ALTER TABLE judge_eval_runs ADD COLUMN tokens_out BIGINT;
ALTER TABLE judge_eval_runs ADD COLUMN judge_seconds DOUBLE;  -- wall seconds of the judge calls made
ALTER TABLE judge_eval_runs ADD COLUMN cost_usd DOUBLE;        -- from the price table, for those calls

-- Items: the pair's subset, and what its call cost (seconds: the call's chunk wall time shared
-- equally by its items). NULL for items stored before 010, released verdicts and cached reruns' rows.
ALTER TABLE judge_eval_items ADD COLUMN subset VARCHAR;
ALTER TABLE judge_eval_items ADD COLUMN tokens_in INTEGER;
ALTER TABLE judge_eval_items ADD COLUMN tokens_out INTEGER;
ALTER TABLE judge_eval_items ADD COLUMN seconds DOUBLE;

-- Metrics: one row per run, subset and metric ('all' for the whole benchmark; earlier rows become
-- 'all'). DuckDB cannot change a primary key in place, so the table is rebuilt.
CREATE TABLE judge_eval_metrics_010 (
    eval_run_id VARCHAR NOT NULL,
    subset VARCHAR NOT NULL,            -- 'all' or one of the benchmark's subsets
    metric VARCHAR NOT NULL,            -- accuracy | pair_accuracy | positional_agreement | macro_f1 | cost_per_1000 ...
    value DOUBLE,                       -- a fraction for rates; tokens, seconds or USD for *_per_1000
    numerator INTEGER,
    denominator INTEGER,
    n INTEGER NOT NULL,
    ci_low DOUBLE,
    ci_high DOUBLE,
    level DOUBLE,
    PRIMARY KEY (eval_run_id, subset, metric)
);
INSERT INTO judge_eval_metrics_010
    SELECT eval_run_id, 'all', metric, value, numerator, denominator, n, ci_low, ci_high, level FROM judge_eval_metrics;
DROP TABLE judge_eval_metrics;
ALTER TABLE judge_eval_metrics_010 RENAME TO judge_eval_metrics;
