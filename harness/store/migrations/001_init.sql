-- 001: models, runs, questions, answers, generation failures.
-- Rows, not documents: one answer per (model fingerprint, sampling params, conversation so far).

CREATE TABLE models (
    name VARCHAR NOT NULL,              -- name in the suite
    fingerprint VARCHAR NOT NULL,       -- weights + adapter + template + settings (see ModelBackend)
    backend VARCHAR NOT NULL,
    source VARCHAR NOT NULL,            -- catalog name, folder, hub id or served model name
    spec_json VARCHAR NOT NULL,         -- the spec as written; keys live in the environment, not here
    first_seen TIMESTAMP NOT NULL DEFAULT current_timestamp,
    last_used TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (name, fingerprint)
);

CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    suite_name VARCHAR NOT NULL,
    config_json VARCHAR NOT NULL,
    harness_version VARCHAR NOT NULL,
    git_sha VARCHAR,
    host VARCHAR NOT NULL,
    pid INTEGER NOT NULL,
    status VARCHAR NOT NULL,            -- running | finished | failed | interrupted
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    wall_s DOUBLE,
    n_planned INTEGER NOT NULL DEFAULT 0,
    n_cached INTEGER NOT NULL DEFAULT 0,
    n_generated INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0,
    error VARCHAR
);

CREATE TABLE questions (
    set_name VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    turns VARCHAR[] NOT NULL,
    reference_answers VARCHAR[] NOT NULL,
    tags VARCHAR[] NOT NULL,
    content_hash VARCHAR NOT NULL,
    PRIMARY KEY (set_name, question_id)
);

CREATE TABLE answers (
    answer_id VARCHAR PRIMARY KEY,      -- sha256(model fingerprint, params, conversation so far)
    model_fingerprint VARCHAR NOT NULL,
    set_name VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    turn INTEGER NOT NULL,              -- 1-based; turn n was generated after the model's own turns < n
    text VARCHAR NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason VARCHAR NOT NULL,
    latency_s DOUBLE NOT NULL,
    params_json VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE generation_failures (
    run_id VARCHAR NOT NULL,
    model_fingerprint VARCHAR NOT NULL,
    set_name VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    turn INTEGER NOT NULL,
    error VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
