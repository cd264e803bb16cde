"""The CLI in an 80-column terminal, over a real store: model names that share long prefixes stay
distinct and faithful (head…tail of exactly one name), no line is wider than the terminal, every
read command's --json is the API's return value and nothing else, a missing --db is a one-line
error that creates nothing, multiple-choice samples show their choices, and a judge that only
follows the position is explained as such.

The store is made the way a user makes one: `harness.api.run` of a suite whose models and judges are
OpenAI-compatible endpoints (tests/stub_server.py on 127.0.0.1), plus a real lm-eval run of the
tiny random model on the built-in cloze task."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import api
from harness.cli import app
from harness.cli.render import jsonable, short_names
from harness.config import ClosedTaskSpec, HFModelSpec, Suite
from harness.errors import HarnessError
from tests.stub_server import StubServer

REPO = Path(__file__).resolve().parents[1]
LONG = ("smollm2-135m-instruct", "smollm2-135m-instruct-sft-lr1e-4", "smollm2-135m-instruct-sft-lr3e-4")
CLOSED_MODEL = "smollm2-135m-instruct-sft-lr3e-4-tiny"  # the tiny model, under a name sharing the prefix
WIDTH = 80
runner = CliRunner()


def _suite_yaml(fair: str, first: str) -> str:
    common = "max_concurrency: 4, timeout_s: 60, max_retries: 1"
    lines = ["name: narrow", "models:"]
    lines += [f"  - {{name: {m}, backend: openai, model: {m}, base_url: '{fair}', {common}}}" for m in LONG]
    lines += ["sets:", "  - {name: qs, path: q.jsonl}", "ratings: {bootstrap_rounds: 50}", "judges:"]
    for name, url in (("fair-judge", fair), ("first-position-judge", first)):
        lines += [f"  - name: {name}", "    dimensions: [accuracy, language]", "    max_parse_retries: 0",
                  f"    model: {{name: {name}-model, backend: openai, model: {name}, base_url: '{url}', {common}}}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model_path):
    folder = tmp_path_factory.mktemp("narrow")
    (folder / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}: describe item {i}."]})
                                            + "\n" for i in range(6)))
    db = folder / "narrow.duckdb"
    with StubServer() as fair, StubServer(verdict_for=lambda a, b: "A") as first:
        (folder / "suite.yaml").write_text(_suite_yaml(fair.base_url, first.base_url))
        report = api.run(folder / "suite.yaml", db, stages=("generate", "judge", "rate"))
    assert report.complete
    closed = Suite(name="narrow-closed", models=[HFModelSpec(name=CLOSED_MODEL, model=str(tiny_model_path),
                                                             batch_size=8)],
                   closed_set=[ClosedTaskSpec(task="knowledge", template="cloze", data="builtin:quickstart_knowledge",
                                              limit=6)])
    api.run_closed(closed, db)
    return {"db": db, "suite": folder / "suite.yaml"}


def cli(*args: str, width: int = WIDTH):
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)})
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _matches(shown: str, full: str) -> bool:
    if "…" not in shown:
        return shown == full
    head, tail = shown.split("…", 1)
    return full.startswith(head) and full.endswith(tail) and len(head) + len(tail) < len(full)


def _name_cells(output: str) -> list[list[str]]:
    """Per table of the output, the first cell of each body row that shows one of the long names."""
    tables, rows = [], []
    for text in output.splitlines():
        if text.startswith("└"):
            tables, rows = tables + [rows] if rows else tables, []
        elif text.startswith("│"):
            cell = text.split("│")[1].strip()
            if cell.startswith("smoll"):
                rows.append(cell)
    return tables


# --- 80 columns --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [("ratings", "{suite}", "--no-save"), ("models",),
                                  ("closed", "results", "narrow-closed"),
                                  ("how-sure", "{suite}", "--rounds", "20", "--judge", "fair-judge")])
def test_names_stay_distinct_and_lines_fit_80_columns(store, args):
    args = [a.format(suite=store["suite"]) for a in args] + ["--db", str(store["db"])]
    out = cli(*args).output
    assert max(map(len, out.splitlines())) <= WIDTH, out
    tables = _name_cells(out)
    names = LONG + (CLOSED_MODEL,)
    assert tables, out
    for cells in tables:
        assert len(set(cells)) == len(cells), cells  # no two rows of a table show the same name
        for cell in cells:
            assert sum(_matches(cell, full) for full in names) == 1, (cell, out)  # faithful to exactly one name
    if args[0] == "ratings":  # too wide for whole names at 80 columns: shortened, yet distinct
        assert any("…" in cell for cells in tables for cell in cells), out


def test_db_info_fits_80_columns_with_whole_suite_names_and_run_ids(store):
    out = cli("db", "info", "--db", str(store["db"])).output
    assert max(map(len, out.splitlines())) <= WIDTH, out
    runs = api.store_info(store["db"]).recent_runs
    rows = [line for line in out.splitlines() if line.startswith("│ ") and line.count("│") == 7]
    assert [line.split("│")[1].strip() for line in rows] == [r["run_id"][:8] for r in runs], out
    assert [line.split("│")[2].strip() for line in rows] == [r["suite_name"] for r in runs] != []
    assert all(f"{r['n_planned']}/{r['n_cached']}/{r['n_generated']}/{r['n_failed']}" in line
               for r, line in zip(runs, rows))


def test_ratings_keep_whole_names_when_the_terminal_is_wide(store):
    out = cli("ratings", str(store["suite"]), "--no-save", "--db", str(store["db"]), width=250).output
    assert all(cell in LONG for cells in _name_cells(out) for cell in cells) and "…" not in out


@pytest.mark.parametrize("args", [("compare", LONG[1], LONG[0], "--suite", "{suite}", "--rounds", "20"),
                                  ("answers", "-m", LONG[2], "--limit", "3"),
                                  ("closed", "samples", "-t", "knowledge", "-m", CLOSED_MODEL, "--limit", "3")])
def test_other_read_commands_fit_80_columns(store, args):
    out = cli(*[a.format(suite=store["suite"]) for a in args], "--db", str(store["db"])).output
    assert max(map(len, out.splitlines())) <= WIDTH, out


def test_short_names_are_distinct_faithful_and_fit():
    rng = random.Random(7)
    stems = ["smollm2-135m-instruct", "gemma3-270m", "llama-3.1-8b-instruct-dpo"]
    for _ in range(200):
        names = {rng.choice(stems) + "".join(rng.choice(["-sft", "-dpo", "-lr1e-4", "-lr3e-4", "-v2", ""])
                                             for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(1, 8))}
        width = rng.randint(8, 30)
        shown = short_names(names, width)
        assert len(set(shown.values())) == len(names)
        assert all(_matches(shown[n], n) for n in names)
        if all(len(n) <= width for n in names):
            assert all(shown[n] == n for n in names)
    three = short_names(LONG, 14)
    assert three[LONG[1]] != three[LONG[2]] and all(len(v) <= 14 for v in three.values()), three


# --- --json ----------------------------------------------------------------------------------------------
def json_of(*args: str):
    result = runner.invoke(app, [*args, "--json"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)  # the whole of stdout is one JSON document


def test_json_of_every_read_command_is_the_apis_data(store):
    db, suite = str(store["db"]), str(store["suite"])
    cases = [
        (("ratings", suite, "--no-save", "--db", db), None),
        (("models", "--db", db), api.model_list(db)),
        (("sets",), api.set_list()),
        (("db", "info", "--db", db), api.store_info(db)),
        (("answers", "-m", LONG[1], "--limit", "0", "--db", db), api.stored_answers(LONG[1], db)),
        (("closed", "samples", "-t", "knowledge", "-m", CLOSED_MODEL, "--limit", "0", "--db", db),
         api.closed_samples("knowledge", CLOSED_MODEL, db)),
        (("closed", "results", "narrow-closed", "--db", db), None),
        (("compare", LONG[1], LONG[0], "--suite", suite, "--rounds", "20", "--db", db),
         api.compare(LONG[1], LONG[0], suite, db, rounds=20)),
        (("how-sure", suite, "--rounds", "20", "--judge", "fair-judge", "--db", db),
         api.how_sure(suite, db, rounds=20, judge="fair-judge")),
        (("lineage", LONG[0], "--db", db), api.lineage(LONG[0], db)),
    ]
    for args, expected in cases:
        got = json_of(*args)
        if args[0] == "ratings":
            board = api.rate(suite, db, save=False)
            assert [(r["model"], r["judge_name"], r["dimension"], r["category"], r["method"], r["rating"])
                    for r in got["rows"]] == [(r.model, r.judge_name, r.dimension, r.category, r.method, r.rating)
                                              for r in board.rows]
            assert got["reliability"]["first-position-judge"]["notes"] == \
                board.reliability["first-position-judge"].explain()
            assert {(m["judge_name"], m["dimension"], m["above"]) for m in got["marks"]} == \
                {(j, d, a.above) for (j, d), adjacent in board.marks().items() for a in adjacent}
        elif args[:2] == ("closed", "results"):
            assert got == jsonable(api.closed_results("narrow-closed", db))
            assert {r["model"] for r in got} == {CLOSED_MODEL} and {r["metric"] for r in got} == {"acc", "acc_norm"}
        else:
            assert got == jsonable(expected), args
    assert len(json_of("answers", "-m", LONG[1], "--limit", "2", "--db", db)) == 2


# --- a missing --db ---------------------------------------------------------------------------------------
READ_COMMANDS = [("ratings", "quickstart"), ("answers", "-m", "x"), ("db", "info"), ("models",),
                 ("closed", "samples", "-t", "t", "-m", "m"), ("closed", "results", "quickstart"),
                 ("compare", "a", "b"), ("how-sure", "quickstart"), ("lineage", "m"), ("tokens", "list"),
                 ("train", "eval", "m", "quickstart"), ("app",)]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_db_is_an_error_and_creates_nothing(tmp_path, args):
    missing = tmp_path / "typo.duckdb"
    result = runner.invoke(app, [*args, "--db", str(missing)])
    assert isinstance(result.exception, HarnessError), (result.output, result.exception)
    message = str(result.exception)
    assert message.startswith(f"{missing}: no such store") and "harness run SUITE --db" in message
    assert "\n" not in message and not missing.exists() and not list(tmp_path.iterdir())


def test_a_missing_db_exits_2_with_one_line(tmp_path):
    missing = tmp_path / "typo.duckdb"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "db", "info", "--db", str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert proc.stderr.strip().splitlines() == [f"error: {missing}: no such store: run `harness run SUITE --db "
                                                f"{missing}` first, or check the path"]
    assert not missing.exists()


# --- what the output says ------------------------------------------------------------------------------------
def test_closed_samples_show_each_choice_its_loglikelihood_the_pick_and_the_target(store):
    from harness.closed.tasks import data_path

    rows = api.closed_samples("knowledge", CLOSED_MODEL, store["db"])
    docs = [json.loads(line) for line in
            data_path(ClosedTaskSpec(task="k", template="cloze", data="builtin:quickstart_knowledge"), Path("."))
            .read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        doc = docs[row["doc_id"]]
        assert [c["text"] for c in row["choices"]] == doc["choices"]
        assert row["target_index"] == "ABCD".index(doc["answer"])
        # the pick read back from the stored log-likelihoods agrees with lm-eval's own scores
        assert (row["picked"] == row["target_index"]) == (row["metrics"]["acc"] == 1.0)
        assert (row["picked_norm"] == row["target_index"]) == (row["metrics"]["acc_norm"] == 1.0)
    out = cli("closed", "samples", "-t", "knowledge", "-m", CLOSED_MODEL, "--limit", "2", "--db",
              str(store["db"])).output
    first = rows[0]
    assert f"Question: {docs[0]['question']}" in out
    for choice in first["choices"]:
        text = next(line for line in out.splitlines() if f" {choice['text']} " in line)
        assert f"{choice['loglikelihood']:.2f}" in text
        assert ("target" in text) == (choice["index"] == first["target_index"])
        assert ("picked" in text) == (choice["index"] in (first["picked"], first["picked_norm"]))
    assert "[-" not in out  # no raw [log-likelihood, greedy] arrays


def test_the_reliability_line_explains_a_judge_that_follows_the_position(store):
    out = " ".join(cli("ratings", str(store["suite"]), "--no-save", "--db", str(store["db"])).output.split())
    first = out[out.index("judge first-position-judge reliability"):]
    assert "swap flips 100%: the verdict follows the position, not the answers: these verdicts carry no signal" in first
    assert "position-A wins 100%: it picks the answer shown first 100% of the time" in first
    fair = out[out.index("judge fair-judge reliability"):out.index("judge first-position-judge")]
    assert "caution" not in fair  # the length-following judge is consistent under swaps


# --- quiet unless --verbose -----------------------------------------------------------------------------------
MAP_SCRIPT = ("from harness import verbosity; verbosity.apply(); import datasets;"
              " datasets.Dataset.from_list([{'a': i} for i in range(50)]).map(lambda r: r)")


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_progress_bars_stay_quiet_unless_verbose(verbose):
    pytest.importorskip("datasets")
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_VERBOSE", "TQDM_DISABLE",
                                                            "HF_DATASETS_DISABLE_PROGRESS_BARS")}
    proc = subprocess.run([sys.executable, "-c", MAP_SCRIPT], capture_output=True, text=True, timeout=120,
                          env={**env, **({"HARNESS_VERBOSE": "1"} if verbose else {})})
    assert proc.returncode == 0, proc.stderr
    assert ("Map" in proc.stderr) == verbose, proc.stderr


NOISY_CHILD = ("from harness import verbosity; import subprocess, sys;"
               " subprocess.run(['sh', '-c', 'echo child-noise >&2']); print('python-noise', file=sys.stderr)\n"
               "with verbosity.third_party_stderr(): subprocess.run(['sh', '-c', 'echo inside-child >&2']);"
               " print('inside-python', file=sys.stderr)\n"
               "print('after', file=sys.stderr)")


@pytest.mark.parametrize("verbose", [False, True])
def test_what_a_library_and_its_subprocesses_print_to_stderr_is_dropped_unless_verbose(verbose):
    # lm-eval runs `git describe`, which printed "fatal: not a git repository" through fd 2 outside a checkout
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_VERBOSE"}
    proc = subprocess.run([sys.executable, "-c", NOISY_CHILD], capture_output=True, text=True, timeout=60,
                          env={**env, **({"HARNESS_VERBOSE": "1"} if verbose else {})})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.split() == ["child-noise", "python-noise"] + (["inside-child", "inside-python"] if verbose
                                                                     else []) + ["after"]


def test_verbose_is_a_global_option_that_sets_the_one_switch(monkeypatch):
    monkeypatch.setenv("HARNESS_VERBOSE", "0")  # off; restored after the test
    result = runner.invoke(app, ["--verbose", "sets", "--json"])
    assert result.exit_code == 0 and os.environ.get("HARNESS_VERBOSE") == "1"
    assert json.loads(result.stdout) == api.set_list()


# --- training: one bar, no dict per logging step ----------------------------------------------------------
def test_training_draws_a_step_bar_instead_of_trl_dict_logs(tiny_model_path, tmp_path):
    pytest.importorskip("trl")
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                                                     {"role": "assistant", "content": f"{2 * i}."}]}) + "\n"
                            for i in range(6)))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({
        "name": "tiny-sft-bar", "base": str(tiny_model_path), "data": {"path": str(data)},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "training": {"max_steps": 3, "batch_size": 2, "max_length": 64, "lr": 0.05, "seed": 0, "threads": 1,
                     "logging_steps": 1},
        "output_dir": str(tmp_path / "out")}))
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_VERBOSE"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "train", "sft", str(recipe), "--db",
                           str(tmp_path / "t.duckdb")], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**env, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    everything = proc.stdout + proc.stderr
    assert "{'loss'" not in everything and "'train_runtime'" not in everything, everything  # no TRL dict logs
    assert "training" in proc.stdout and "3/3" in proc.stdout, proc.stdout  # the rich bar, finished
    assert proc.stdout.count("loss ") == 1  # the final numbers, printed once
    assert "%|" not in everything  # no tqdm bar (datasets' map, transformers' loading)
