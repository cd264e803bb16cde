-- 004: trained models with their lineage, training curves, and comparisons against their parents.

CREATE TABLE trained_models (
    model VARCHAR PRIMARY KEY,          -- the name the new model is evaluated under
    parent VARCHAR NOT NULL,            -- parent model: catalog name, HF folder or stored model name
    parent_fingerprint VARCHAR,
    method VARCHAR NOT NULL,            -- sft | dpo
    finetune VARCHAR NOT NULL,          -- lora | full
    recipe_json VARCHAR NOT NULL,
    data_source VARCHAR NOT NULL,       -- a file path, or a description of the store query
    data_hash VARCHAR NOT NULL,
    data_rows INTEGER NOT NULL,
    base_model_path VARCHAR NOT NULL,   -- the HF folder the adapter applies to
    adapter_path VARCHAR,
    merged_path VARCHAR,
    steps INTEGER NOT NULL,
    wall_s DOUBLE NOT NULL,
    peak_rss_mb DOUBLE NOT NULL,
    final_loss DOUBLE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE training_log (
    model VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    name VARCHAR NOT NULL,              -- loss | rewards/margins | rewards/accuracies | learning_rate ...
    value DOUBLE NOT NULL,
    PRIMARY KEY (model, step, name)
);

CREATE TABLE parent_comparisons (
    model VARCHAR NOT NULL,
    parent VARCHAR NOT NULL,
    suite_name VARCHAR NOT NULL,
    judge_name VARCHAR NOT NULL,        -- a judge, or 'lm-eval' for closed-set deltas
    dimension VARCHAR NOT NULL,         -- a judged dimension, or the closed-set task
    method VARCHAR NOT NULL,            -- elo | bt | win_rate | a closed-set metric
    delta DOUBLE NOT NULL,              -- model minus parent
    ci_low DOUBLE,
    ci_high DOUBLE,
    computed_at TIMESTAMP NOT NULL
);
