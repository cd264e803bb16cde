-- 003: closed-set results from lm-evaluation-harness: one row per (model, task, settings) run, one
-- per metric and filter, one per document and filter.

CREATE TABLE closed_tasks (
    result_key VARCHAR PRIMARY KEY,     -- sha256(model fingerprint, task name, task hash, settings)
    suite_name VARCHAR NOT NULL,
    model VARCHAR NOT NULL,             -- model name as in the suite
    model_fingerprint VARCHAR NOT NULL,
    task VARCHAR NOT NULL,              -- lm-eval task name
    task_hash VARCHAR NOT NULL,         -- sha256 of the task's resolved config and data files
    task_version VARCHAR,               -- the task YAML's metadata.version
    num_fewshot INTEGER NOT NULL,
    n_samples INTEGER NOT NULL,         -- documents evaluated (after limit)
    settings_json VARCHAR NOT NULL,     -- limit, batch size, chat template, fewshot seed ...
    lm_eval_backend VARCHAR NOT NULL,   -- hf | local-completions | local-chat-completions
    lm_eval_version VARCHAR NOT NULL,
    output_type VARCHAR NOT NULL,       -- loglikelihood | multiple_choice | generate_until | ...
    wall_s DOUBLE NOT NULL,
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE closed_metrics (
    result_key VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,            -- acc | acc_norm | exact_match | ...
    filter VARCHAR NOT NULL,            -- lm-eval filter name: none | final-number | ...
    value DOUBLE,
    stderr DOUBLE,
    higher_is_better BOOLEAN,
    PRIMARY KEY (result_key, metric, filter)
);

CREATE TABLE closed_samples (
    result_key VARCHAR NOT NULL,
    doc_id INTEGER NOT NULL,
    filter VARCHAR NOT NULL,
    prompt VARCHAR NOT NULL,            -- the context of the document's first request
    target VARCHAR,
    responses VARCHAR[] NOT NULL,       -- raw outputs, one per request (generations or loglikelihoods)
    filtered_response VARCHAR,
    metrics MAP(VARCHAR, DOUBLE) NOT NULL,
    PRIMARY KEY (result_key, doc_id, filter)
);
