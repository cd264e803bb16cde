"""The reward-model recipe on the tiny random llama: a real TRL RewardTrainer run of a few steps,
registered with lineage, its held-out pairs scored through the judge-eval API and stored."""

from __future__ import annotations

import json

import pytest

from harness import api
from harness.errors import ConfigError, HarnessError
from harness.store import Store
from judges.labelled import read_pairs
from trainers.reward import RewardRecipe, plan_reward, train_reward

pytest.importorskip("trl")
pytest.importorskip("peft")


def _pairs_file(path, n=16):
    rows = []
    for i in range(n):
        good, bad = f"{i} plus {i} is {2 * i}.", "No idea, ask someone else."
        label = "A" if i % 2 else "B"
        a, b = (good, bad) if label == "A" else (bad, good)
        rows.append({"id": f"p{i}", "subset": "sums" if i % 4 else "other", "prompt": f"What is {i} + {i}?",
                     "response_a": a, "response_b": b, "label": label})
    rows.append({"id": "tie", "subset": "sums", "prompt": "Say hi.", "response_a": "Hi.", "response_b": "Hello.",
                 "label": "tie"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(tmp_path, **data) -> RewardRecipe:
    return RewardRecipe.model_validate({
        "name": "tiny-rm", "base": str(tmp_path / "base"),
        "data": {"path": str(_pairs_file(tmp_path / "pairs.jsonl")), "format": "labelled", "held_out": 5,
                 "limit": 8, "seed": 1} | data,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "training": {"max_steps": 3, "batch_size": 2, "max_length": 96, "lr": 0.01, "seed": 0, "threads": 1},
        "reward": {"bootstrap_rounds": 50}, "output_dir": str(tmp_path / "out")})


@pytest.fixture
def base(tmp_path, tiny_model_path):
    import shutil

    shutil.copytree(tiny_model_path, tmp_path / "base")
    return tmp_path / "base"


def test_reward_recipe_trains_registers_lineage_and_scores_its_held_out_pairs(tmp_path, base):
    store = Store(tmp_path / "h.duckdb")
    with pytest.raises(HarnessError, match="a reward model is a judge"):  # nothing to evaluate beside a parent
        api.train("reward", _recipe(tmp_path), store, then_eval="quickstart")
    result, report = api.train("reward", _recipe(tmp_path), store)  # what `harness train reward` calls
    assert report is None
    assert result.method == "reward" and result.steps == 3 and result.data_rows == 8
    assert len(result.curve("loss")) == 3 and result.curve("accuracy")  # TRL's reward accuracy per log step
    adapter_config = json.loads((result.adapter_path / "adapter_config.json").read_text())
    assert adapter_config["task_type"] == "SEQ_CLS"  # the new reward head is saved with the adapter
    with store.read() as con:
        row = con.execute("SELECT parent, method, finetune, data_rows, adapter_path FROM trained_models"
                          " WHERE model = 'tiny-rm'").fetchone()
        registered = con.execute("SELECT backend FROM models WHERE name = 'tiny-rm'").fetchone()
    assert row == (str(base), "reward", "lora", 8, str(result.adapter_path.resolve())) and registered == ("hf",)
    # the held-out pairs: never trained on, written as labelled pairs, judged in both orders and stored
    held = read_pairs(result.held_out_file)
    assert len(held) == 5
    trained_prompts = {r["prompt"][-1]["content"] for r in _plan_rows(tmp_path, store)}
    assert not trained_prompts & {p.prompt for p in held}
    run = result.held_out.run
    assert run.judge_name == "tiny-rm" and run.n_items == 5 and run.benchmark == "labelled:tiny-rm-heldout"
    accuracy = result.metric("accuracy")
    assert accuracy is not None and accuracy.denominator is not None and accuracy.ci_low is not None
    with store.read() as con:
        stored = con.execute("SELECT count(*) FROM judge_eval_runs WHERE judge_name = 'tiny-rm'").fetchone()[0]
    assert stored == 1


def _plan_rows(tmp_path, store):
    checked, _ = plan_reward(_recipe(tmp_path), store)
    return checked.data.rows


def test_held_out_split_is_seeded_and_bad_recipes_fail_before_any_weights_load(tmp_path, base):
    store = Store(tmp_path / "h.duckdb")
    first, held = plan_reward(_recipe(tmp_path), store)
    again, held_again = plan_reward(_recipe(tmp_path), store)
    assert [p.id for p in held] == [p.id for p in held_again] and first.data.rows == again.data.rows
    _, other = plan_reward(_recipe(tmp_path, seed=2), store)
    assert [p.id for p in other] != [p.id for p in held]
    assert all(r["chosen"][0]["content"].endswith(".") and "plus" in r["chosen"][0]["content"]
               for r in first.data.rows)  # gold orientation: the right sum is always chosen
    with pytest.raises(ConfigError, match="data.held_out: 17 of 17 pairs leaves no pair to train on"):
        plan_reward(_recipe(tmp_path, held_out=17), store)
    tight = _recipe(tmp_path).model_copy(update={"training": _recipe(tmp_path).training.model_copy(
        update={"max_length": 16})})
    with pytest.raises(ConfigError, match="no pair with a preferred response fits training.max_length 16"):
        plan_reward(tight, store)
