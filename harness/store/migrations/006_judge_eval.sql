-- 006: judge meta-evaluation (`harness judge-eval`): one row per run of a judge on a human-labelled
-- benchmark, one per judged item and order (the cache: a rerun of the same judge calls nothing),
-- the items each run scored, and one row per metric of a run.

CREATE TABLE judge_eval_runs (
    eval_run_id VARCHAR PRIMARY KEY,    -- sha256(judge fingerprint, benchmark, data hash, settings)
    judge_name VARCHAR NOT NULL,        -- a live judge, 'pandalm-7b (released)', 'mt-bench experts', ...
    judge_fingerprint VARCHAR NOT NULL, -- a live judge's fingerprint; released verdicts: hash of their file
    source VARCHAR NOT NULL,            -- live | released | human | fastchat_file
    benchmark VARCHAR NOT NULL,         -- mt_bench_human | pandalm_testset
    data_hash VARCHAR NOT NULL,         -- sha256 over the bytes of every data file read
    data_files VARCHAR[] NOT NULL,      -- their paths as given
    n_items INTEGER NOT NULL,           -- items scored (pairs, PandaLM items, vote pairs' keys)
    n_parsed INTEGER NOT NULL,          -- items with a verdict (live: both orders parsed)
    n_calls INTEGER NOT NULL,           -- judge calls this run made (0: released, human or all cached)
    n_cached INTEGER NOT NULL,          -- judged items and orders found in judge_eval_items
    settings_json VARCHAR NOT NULL,     -- sample, seed, merge policy, dimension, bootstrap rounds ...
    harness_version VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    wall_s DOUBLE NOT NULL
);

CREATE TABLE judge_eval_items (
    item_key VARCHAR PRIMARY KEY,       -- sha256(judge fingerprint, benchmark, item id, order, item content)
    judge_name VARCHAR NOT NULL,
    judge_fingerprint VARCHAR NOT NULL,
    benchmark VARCHAR NOT NULL,
    item_id VARCHAR NOT NULL,           -- 'question_id:model_a:model_b:turn' (MT-Bench) or the PandaLM idx
    item_order INTEGER NOT NULL,        -- 1: as in the data file, 2: swapped, 0: both orders merged upstream
    model_a VARCHAR NOT NULL,           -- shown in position A (PandaLM: response1 or response2)
    model_b VARCHAR NOT NULL,
    verdict VARCHAR,                    -- A | B | tie, positional: the verdict scored; NULL when unparsed
    parsed BOOLEAN NOT NULL,            -- false: no verdict (released 'garbage' is still scored as a tie)
    attempts INTEGER NOT NULL,
    raw_output VARCHAR NOT NULL,
    choice_lp_1 DOUBLE,                 -- likelihood-choice judges: log P("1"), P("2"), P("Tie")
    choice_lp_2 DOUBLE,
    choice_lp_tie DOUBLE,
    human_label VARCHAR,                -- the gold label in the same positions (PandaLM majority); NULL
                                        -- where every vote is compared (MT-Bench)
    human_labels VARCHAR[] NOT NULL,    -- each person's label, 'annotator1=A', 'expert_3=tie'
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE judge_eval_run_items (
    eval_run_id VARCHAR NOT NULL,
    item_key VARCHAR NOT NULL,
    PRIMARY KEY (eval_run_id, item_key)
);

CREATE TABLE judge_eval_metrics (
    eval_run_id VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,            -- agreement_with_ties | agreement_without_ties | accuracy | macro_f1 ...
    value DOUBLE,                       -- a fraction in [0, 1]; NULL when nothing was comparable
    numerator INTEGER,                  -- for ratios: value = numerator / denominator
    denominator INTEGER,
    n INTEGER NOT NULL,                 -- items the metric is over (the bootstrap's resampling unit)
    ci_low DOUBLE,                      -- percentile bootstrap over items
    ci_high DOUBLE,
    level DOUBLE,
    PRIMARY KEY (eval_run_id, metric)
);
