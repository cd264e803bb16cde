-- 008: the service's persistent queue (jobs and their progress events) and its API tokens.
-- A job is claimed by one worker at a time under a lease the worker keeps renewing; a lease that
-- runs out (the worker was killed) puts the job back in the queue, and it resumes from the cache.

CREATE TABLE jobs (
    job_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,              -- run | closed | ratings | judge-eval | train
    state VARCHAR NOT NULL,             -- queued | running | cancelling | finished | failed | cancelled
    priority INTEGER NOT NULL,          -- higher first; equal priorities in submission order
    suite_name VARCHAR,
    suite_json VARCHAR,                 -- the validated suite; keys live in the environment, not here
    params_json VARCHAR NOT NULL,       -- the kind's options (stages, method, recipe, data file, ...)
    data_roots VARCHAR[] NOT NULL,      -- folders the job may read, checked again when it starts
    resources VARCHAR[] NOT NULL,       -- host-local things one job at a time may hold (a GPU, a local model)
    submitter VARCHAR NOT NULL,         -- the token's name
    submitted_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,               -- first claim
    finished_at TIMESTAMP,
    worker VARCHAR,                     -- host:pid of the lease holder
    lease_until TIMESTAMP,
    attempts INTEGER NOT NULL,          -- claims so far (a worker killed mid-job makes it 2)
    stage VARCHAR,                      -- the step running now (a progress label)
    progress_json VARCHAR,              -- {label: [done, total]} of every step so far
    result_json VARCHAR,                -- counts at the end: planned, cached, made, failed calls
    n_made INTEGER,                     -- model + judge calls made (not from the cache)
    n_cached INTEGER,
    n_failed INTEGER,
    error VARCHAR                       -- one line, secrets masked
);

CREATE TABLE job_events (
    job_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,               -- 1, 2, ... per job: the event stream's id
    created_at TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,              -- state | progress | stage
    state VARCHAR,
    label VARCHAR,
    done INTEGER,
    total INTEGER,
    message VARCHAR,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE tokens (
    name VARCHAR NOT NULL,
    token_hash VARCHAR PRIMARY KEY,     -- sha256 of the token; the token itself is printed once, never stored
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
