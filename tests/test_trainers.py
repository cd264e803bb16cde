"""Trainers on the tiny random llama: real TRL + peft runs of a few steps, lineage in the store,
mining verdicts into preference pairs, and recipes that fail before any weights load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.config import HFModelSpec, SetSpec, Suite
from harness.errors import ConfigError, DataError, HarnessError
from harness.models.base import stable_hash
from harness.runner import run_suite
from harness.store import Store
from harness.store import queries as q
from trainers.data import mine_best_answers, mine_pairs
from trainers.recipe import Recipe, StoreData

pytest.importorskip("trl")
pytest.importorskip("peft")

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
FAST = {"max_steps": 2, "batch_size": 2, "max_length": 64, "lr": 0.05, "seed": 0, "threads": 1}


def _recipe(name: str, base: str, out: Path, **extra) -> Recipe:
    fields = {"name": name, "base": base, "data": {"path": "instructions.jsonl", "limit": 6}, "lora": LORA,
              "training": FAST, "output_dir": str(out / name)}
    return Recipe.model_validate(fields | extra)


def _logits(model, tokenizer, text="What is the capital of Australia?"):
    import torch

    with torch.inference_mode():
        return model(**tokenizer(text, return_tensors="pt")).logits.float()


@pytest.fixture(scope="module")
def trained(tiny_model_path, tmp_path_factory):
    """One SFT run (LoRA, merged copy written) and one DPO run on top of it, in one store."""
    from trainers import train_dpo, train_sft

    out = tmp_path_factory.mktemp("trained")
    store = Store(out / "h.duckdb")
    sft = train_sft(_recipe("tiny-sft", str(tiny_model_path), out, merge=True), store)
    pairs = out / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"What is {i} + {i}?", "chosen": f"{2 * i}.",
                                         "rejected": "I cannot say, ask someone else."}) + "\n" for i in range(6)))
    dpo = train_dpo(_recipe("tiny-dpo", "tiny-sft", out, data={"path": str(pairs)}), store)
    return {"store": store, "sft": sft, "dpo": dpo, "out": out, "base": tiny_model_path}


def test_sft_trains_the_adapter_and_reloads_to_the_same_logits(trained):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sft = trained["sft"]
    assert sft.steps == 2 and len(sft.curve("loss")) == 2 and sft.peak_rss_mb > 0
    weights = load_file(sft.adapter_path / "adapter_model.safetensors")
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: nonzero means it trained
    tok = AutoTokenizer.from_pretrained(trained["base"])
    base = AutoModelForCausalLM.from_pretrained(trained["base"])
    before = _logits(base, tok)
    reloaded = PeftModel.from_pretrained(base, str(sft.adapter_path))
    after = _logits(reloaded, tok)
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.allclose(after, _logits(sft.model, tok), atol=1e-4)  # the trained model in memory
    merged = AutoModelForCausalLM.from_pretrained(sft.merged_path)
    assert torch.allclose(after, _logits(merged, tok), atol=1e-4)


def test_lineage_rows_and_the_stored_spec_runs_in_a_suite(trained):
    from harness.models.hf import HFBackend
    from harness.models.base import GenerationParams, Message

    store = trained["store"]
    with store.read() as con:
        rows = {r[0]: r for r in con.execute(
            "SELECT model, parent, method, finetune, data_rows, data_hash, steps, adapter_path, base_model_path"
            " FROM trained_models").fetchall()}
        losses = con.execute("SELECT step, value FROM training_log WHERE model = 'tiny-sft' AND name = 'loss'"
                             " ORDER BY step").fetchall()
        margins = con.execute("SELECT count(*) FROM training_log WHERE model = 'tiny-dpo'"
                              " AND name = 'rewards/margins'").fetchone()[0]
        spec = json.loads(con.execute("SELECT spec_json FROM models WHERE name = 'tiny-dpo'").fetchone()[0])
    assert rows["tiny-sft"][1:5] == (str(trained["base"]), "sft", "lora", 6)
    assert rows["tiny-dpo"][1:5] == ("tiny-sft", "dpo", "lora", 6)
    assert len(rows["tiny-sft"][5]) == 64 and rows["tiny-dpo"][6] == 2
    assert [s for s, _ in losses] == [1, 2] and margins == 2
    # DPO trained on top of the SFT model: its adapter applies to the SFT weights merged into a folder.
    assert rows["tiny-dpo"][8].endswith("tiny-dpo/parent-merged") and spec["adapter"] == rows["tiny-dpo"][7]
    backend = HFBackend(HFModelSpec.model_validate(spec))
    [answer] = backend.generate([(Message("user", "Hi"),)], GenerationParams(max_new_tokens=3))
    assert answer.completion_tokens == 3


def test_full_fine_tuning_changes_every_trained_weight_and_saves_a_model(tiny_model_path, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from trainers import train_sft

    result = train_sft(_recipe("tiny-full", str(tiny_model_path), tmp_path, lora=None), Store(tmp_path / "h.duckdb"))
    assert result.adapter_path is None and result.spec.model == str(result.merged_path.resolve())
    before = AutoModelForCausalLM.from_pretrained(tiny_model_path).state_dict()
    after = AutoModelForCausalLM.from_pretrained(result.merged_path).state_dict()
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"])


def test_then_eval_compares_with_the_parent_and_lineage_shows_the_tree(trained, tmp_path):
    from trainers import evaluate_against_parent, lineage

    store = trained["store"]
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "category": "misc", "turns": [t]}) + "\n"
                                               for i, t in enumerate(["Say hi.", "Name a colour.", "Count to 3."])))
    judge = {"name": "tiny-judge", "style": "pandalm", "decode": "choice", "dimensions": ["helpfulness"],
             "model": {"name": "tiny-judge-model", "backend": "hf", "model": str(trained["base"])}}
    suite = {"name": "loop", "models": [{"name": "other", "backend": "hf", "model": str(trained["base"])}],
             "sets": [{"name": "mini", "path": "qs.jsonl"}], "generation": {"default": {"max_new_tokens": 4}},
             "judges": [judge], "ratings": {"bootstrap_rounds": 50}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    report = evaluate_against_parent("tiny-dpo", tmp_path / "suite.yaml", store)
    assert {m.name for m in report.suite.models} == {"other", "tiny-sft", "tiny-dpo"}
    bt = next(c for c in report.comparisons if c.method == "bt")
    assert bt.ci_low <= bt.delta <= bt.ci_high and bt.dimension == "helpfulness"
    # the paired comparison of harness.api.compare (tests/test_stats_board.py pins the numbers)
    from harness import api

    assert report.paired == api.compare("tiny-dpo", "tiny-sft", report.suite, store).panels
    assert (bt.p_value, bt.mde) == (report.paired[0].paired.p_bt, report.paired[0].paired.mde_bt)
    assert report.paired[0].paired.questions == 3
    assert any(c.method == "win_rate" and c.battles == 3 for c in report.comparisons)
    with store.read() as con:
        stored = con.execute("SELECT model, parent, suite_name, method FROM parent_comparisons").fetchall()
    assert ("tiny-dpo", "tiny-sft", "loop", "bt") in stored
    root = lineage(store, "tiny-dpo")
    assert root.name == str(trained["base"]) and root.row is None
    assert [c.name for c in root.children] == ["tiny-sft"] and root.children[0].children[0].name == "tiny-dpo"
    assert root.children[0].children[0].comparisons


# --- mining the store -------------------------------------------------------------------------------
def _judged_store(tmp_path, scripted) -> Store:
    """Two scripted models answer three questions; verdicts are written per question:
    q1: both orders pick `good` (both dimensions) -> one pair, good chosen;
    q2: position bias (A both times) -> the orders disagree, no merged winner;
    q3: accuracy says `bad` in both orders, language says `good` -> dimensions contradict."""
    (tmp_path / "qs.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "category": "misc", "turns": [f"Q{i}?"]})
                                               + "\n" for i in (1, 2, 3)))
    suite = Suite(name="m", models=[HFModelSpec(name=n, model="x") for n in ("good", "bad")],
                  sets=[SetSpec(name="mini", path=str(tmp_path / "qs.jsonl"))])
    store = Store(tmp_path / "m.duckdb")
    run_suite(suite, store, backends={n: scripted(n) for n in ("good", "bad")})
    with store.read() as con:
        ids = {(m, qid): a for m, qid, a in con.execute(
            "SELECT replace(model_fingerprint, 'scripted-', ''), question_id, answer_id FROM answers").fetchall()}
    winner = {("q1", "accuracy"): "good", ("q1", "language"): "good", ("q3", "accuracy"): "bad",
              ("q3", "language"): "good"}
    rows = []
    for qid in ("q1", "q2", "q3"):
        for a, b in (("good", "bad"), ("bad", "good")):
            for dim in ("accuracy", "language"):
                wins = winner.get((qid, dim))
                verdict = "A" if wins is None else ("A" if wins == a else "B")
                call = stable_hash([qid, a, b])
                rows.append((stable_hash([call, dim]), call, "j", "fp", "pairwise", "mini", qid, 1, a, b,
                             ids[(a, qid)], ids[(b, qid)], dim, verdict, None, "ok", 1, verdict, "run", None, None, None))
    with store.write() as con:
        q.register_judge(con, "j", ["fp"], "pairwise", "{}")
        q.insert_judgments(con, rows)
    return store


def test_mined_pairs_use_the_merged_winner_and_drop_contradictions(tmp_path, scripted):
    store = _judged_store(tmp_path, scripted)
    data = mine_pairs(store, StoreData())
    assert [(p["question"], p["chosen_model"], p["rejected_model"], p["votes"]) for p in data.provenance] == [
        ("q1", "good", "bad", 2)]
    assert data.rows[0]["prompt"] == [{"role": "user", "content": "Q1?"}]
    assert data.rows[0]["chosen"][0]["content"].startswith("good answers")
    accuracy = mine_pairs(store, StoreData(dimensions=["accuracy"]))
    assert [(p["question"], p["chosen_model"]) for p in accuracy.provenance] == [("q1", "good"), ("q3", "bad")]
    best = mine_best_answers(store, StoreData())
    assert [(p["question"], p["model"]) for p in best.provenance] == [("q1", "good")]
    assert best.rows[0]["completion"][0]["content"].startswith("good answers")
    with pytest.raises(DataError, match=r"^where: data\.store: 0 preference pairs after filtering \(0 battles"):
        mine_pairs(store, StoreData(judge="someone-else"), where="where")


def test_calibrated_mining_decides_position_biased_battles(tmp_path, scripted):
    """q2's judge picked position A in both orders (no agreement), but its stored choice
    log-likelihoods favour `good` once the orders are summed: calibrated mining makes it a pair."""
    store = _judged_store(tmp_path, scripted)
    with store.write() as con:
        for first, scores in (("good", [-0.1, -2.0, -5.0]), ("bad", [-0.5, -1.0, -5.0])):
            con.execute("UPDATE judgments SET choice_lp_1 = ?, choice_lp_2 = ?, choice_lp_tie = ?"
                        " WHERE question_id = 'q2' AND model_a = ?", [*scores, first])
    assert [p["question"] for p in mine_pairs(store, StoreData()).provenance] == ["q1"]
    calibrated = mine_pairs(store, StoreData(calibrated=True))
    assert [(p["question"], p["chosen_model"], p["votes"]) for p in calibrated.provenance] == [
        ("q1", "good", 2), ("q2", "good", 2)]


# --- bad recipes ---------------------------------------------------------------------------------------
@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load weights fails the test: bad recipes must be refused before that."""
    import trainers.common

    def forbidden(plan):
        raise AssertionError("weights were loaded for a bad recipe")

    monkeypatch.setattr(trainers.common, "load_model", forbidden)
    monkeypatch.setattr("trainers.sft.load_model", forbidden)
    monkeypatch.setattr("trainers.dpo.load_model", forbidden)


def _write(tmp_path, tiny_model_path, **changes) -> Path:
    recipe = {"name": "r", "base": str(tiny_model_path), "data": {"path": "instructions.jsonl"},
              "lora": dict(LORA), "training": dict(FAST), "output_dir": str(tmp_path / "out")}
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = recipe
        for p in parents:
            node = node[p]
        node[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.parametrize("changes, error, pattern", [
    ({"lora__rank": 8}, ConfigError, r"recipe\.yaml: lora\.rank: Extra inputs are not permitted: remove it"),
    ({"data__path": "missing.jsonl"}, DataError, r"recipe\.yaml: data\.path: missing\.jsonl not found"),
    ({"lora__target_modules": ["q_proj", "qkv_proj"]}, ConfigError,
     r"recipe\.yaml: lora\.target_modules: qkv_proj not in .*q_proj"),
    ({"data": {"store": {"judge": "nobody"}}}, DataError, r"recipe\.yaml: data\.store: 0 best-rated answers"),
    ({"base": "no-such-model"}, ConfigError, r"recipe\.yaml: base: .*no-such-model"),
])
def test_bad_recipes_fail_with_one_line_before_loading(tmp_path, tiny_model_path, no_weights, changes, error, pattern):
    from trainers import train_sft

    path = _write(tmp_path, tiny_model_path, **changes)
    with pytest.raises(error, match=pattern) as info:
        train_sft(path, Store(tmp_path / "h.duckdb"))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_cli_reports_a_bad_recipe_as_one_line_and_shows_lineage(trained, tmp_path, tiny_model_path):
    from typer.testing import CliRunner

    from harness.cli import app

    path = _write(tmp_path, tiny_model_path, lora__rank=8)
    result = CliRunner().invoke(app, ["train", "sft", str(path), "--db", str(tmp_path / "h.duckdb")])
    assert isinstance(result.exception, HarnessError) and "lora.rank" in str(result.exception)
    result = CliRunner().invoke(app, ["lineage", "tiny-sft", "--db", str(trained["store"].path)],
                                env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "tiny-sft · sft/lora · 6 rows" in result.output and "tiny-dpo · dpo/lora" in result.output


def test_importing_the_cli_and_trainers_loads_no_torch():
    code = "import sys, harness.cli, trainers; print(sorted(m for m in ('torch', 'trl', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
