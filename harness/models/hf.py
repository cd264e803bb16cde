"""In-process transformers backend (CPU, CUDA or MPS): batched, left-padded, chat-templated.

The model loads on the first `generate` call, so building a backend (to read its fingerprint, say)
costs no memory and a fully cached rerun never loads weights at all.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.errors import ConfigError, MissingExtraError
from harness.models.base import Completion, Conversation, GenerationParams, stable_hash
from harness.models.catalog import resolve_model_path, weights_identity
from harness.models.device import resolve_device
from harness.models.specs import HFModelSpec


def read_chat_template(folder: Path, override: str | None = None) -> str:
    """The chat template a backend will use: the override file, else the folder's own."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise ConfigError(f"chat_template: {path} does not exist: give a path to a Jinja file")
        return path.read_text()
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    return ""


def model_fingerprint(kind: str, folder: Path, adapter: str | None, template: str, **settings) -> str:
    """Shared by the hf and vllm backends: weights + adapter + template + output-changing settings."""
    adapter_id = weights_identity(Path(adapter)) if adapter else None
    return stable_hash(
        {
            "kind": kind,
            "weights": weights_identity(folder),
            "adapter": adapter_id,
            "template": stable_hash(template),
            **settings,
        }
    )


class HFBackend:
    """transformers `generate` on the spec's device, many conversations per forward pass."""

    def __init__(self, spec: HFModelSpec):
        self.spec = spec
        self.path = resolve_model_path(spec.model)
        # Resolved now, not at load: a missing GPU is an error before any answer is looked up.
        self.device = resolve_device(spec.device, spec.name)
        self.template = read_chat_template(self.path, spec.chat_template)
        self.chunk_size = spec.batch_size  # conversations the runner hands over (and stores) at once
        self._model = None
        self._tokenizer = None
        self._reward_model = None  # a sequence-classification model, loaded by score_sequences only

    def fingerprint(self) -> str:
        # The resolved device type is part of the fingerprint: GPU kernels reduce in another order
        # than the CPU's, so logits differ in the last bits and greedy decoding can pick another
        # token, after which the answer diverges (the reason dtype is in it too). "auto" is never
        # hashed (it means different hardware on different machines), and cpu adds nothing, so
        # answers stored before `device` existed (all on CPU) keep their keys.
        on = {} if self.device == "cpu" else {"device": self.device}
        return model_fingerprint(
            "hf", self.path, self.spec.adapter, self.template, dtype=self.spec.dtype, **on
        )

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM

        tokenizer = self._load_tokenizer()
        model = _quietly(lambda: AutoModelForCausalLM.from_pretrained(self.path, dtype=getattr(torch, self.spec.dtype)))
        self._model, self._tokenizer = self._with_adapter(model), tokenizer

    def _load_tokenizer(self):
        if self._tokenizer is not None:
            return self._tokenizer
        try:
            import torch
            from transformers import AutoTokenizer
        except ImportError:
            raise MissingExtraError("hf", "transformers/torch") from None
        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)
        tokenizer = AutoTokenizer.from_pretrained(self.path, padding_side="left")
        if self.template:
            tokenizer.chat_template = self.template
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        return tokenizer

    def _with_adapter(self, model):
        if self.spec.adapter:
            try:
                from peft import PeftModel
            except ImportError:
                raise MissingExtraError("train", "peft") from None
            model = PeftModel.from_pretrained(model, self.spec.adapter)
        model.to(self.device)  # after the adapter, so its weights move with the base model's
        model.eval()
        return model

    def _adds_bos(self, texts: list[str]) -> bool:
        """Whether the tokenizer should add BOS: templates that already start with it (Gemma's)
        must not get a second one."""
        tok = self._tokenizer
        return not (bool(tok.bos_token) and texts[0].startswith(tok.bos_token))

    def _encode_texts(self, conversations: list[Conversation]) -> list[str]:
        return [
            self._tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in conv],
                tokenize=False,
                add_generation_prompt=True,
            )
            for conv in conversations
        ]

    def generate(self, conversations: list[Conversation], params: GenerationParams) -> list[Completion]:
        self._load()
        texts = self._encode_texts(conversations)
        # Similar lengths in one batch waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Completion | None] = [None] * len(texts)
        size = self.spec.batch_size
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            for i, completion in zip(batch, self._generate_batch([texts[i] for i in batch], params)):
                results[i] = completion
        return results  # type: ignore[return-value]

    def _generate_batch(self, texts: list[str], params: GenerationParams) -> list[Completion]:
        import torch

        tok, model = self._tokenizer, self._model
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=self._adds_bos(texts)).to(self.device)
        eos_ids = model.generation_config.eos_token_id
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
        kwargs = dict(max_new_tokens=params.max_new_tokens, pad_token_id=tok.pad_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, **kwargs)
        latency = time.perf_counter() - started
        prompt_len = enc["input_ids"].shape[1]
        completions = []
        for row, mask in zip(out[:, prompt_len:].tolist(), enc["attention_mask"].tolist()):
            n = next((k + 1 for k, t in enumerate(row) if t in eos_ids), len(row))
            hit_eos = n <= len(row) and row[n - 1] in eos_ids
            text = tok.decode(row[: n - 1] if hit_eos else row[:n], skip_special_tokens=True)
            for s in params.stop:  # generate stops *after* a stop string; drop it like OpenAI does
                text = text.split(s)[0]
            completions.append(
                Completion(
                    text=text.strip(),
                    prompt_tokens=int(sum(mask)),
                    completion_tokens=n,
                    finish_reason="stop" if hit_eos or n < params.max_new_tokens else "length",
                    latency_s=latency,
                )
            )
        return completions

    def count_prompt_tokens(self, conversations: list[Conversation]) -> list[int]:
        """Tokens of each prompt as generate and score_choices feed it (chat template, BOS rule)."""
        self._load()
        prompts = self._encode_texts(conversations)
        add_bos = self._adds_bos(prompts)
        return [len(self._tokenizer(p, add_special_tokens=add_bos)["input_ids"]) for p in prompts]

    def score_choices(self, conversations: list[Conversation], choices: tuple[str, ...]) -> list[list[float]]:
        """Log-likelihood of each choice as the start of the assistant's reply, per conversation.
        Used by judges that pick a verdict by likelihood instead of parsing free text.

        Each prompt is prefilled once, keeping only the last position's logits (full-vocabulary
        logits at every position were most of the cost); a choice longer than one token continues
        from a copy of the KV cache."""
        self._load()
        tok = self._tokenizer
        prompts = self._encode_texts(conversations)
        add_bos = self._adds_bos(prompts)
        choice_ids = [tok(c, add_special_tokens=False)["input_ids"] for c in choices]
        encoded = [tok(p, add_special_tokens=add_bos)["input_ids"] for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # less padding per batch
        scores: list[list[float]] = [[]] * len(encoded)
        for start in range(0, len(order), self.spec.batch_size):
            batch = order[start : start + self.spec.batch_size]
            for i, row in zip(batch, self._score_batch([encoded[i] for i in batch], choice_ids)):
                scores[i] = row
        return scores

    def _score_batch(self, rows: list[list[int]], choice_ids: list[list[int]]) -> list[list[float]]:
        import copy

        import torch

        width, pad = max(map(len, rows)), self._tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        with torch.inference_mode():
            out = self._model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=1)
            first = out.logits[:, -1].float().log_softmax(-1)
            columns = []
            for c in choice_ids:
                score = first[:, c[0]].clone()
                if len(c) > 1:  # feed the choice's own prefix, read the logprobs of its next tokens
                    cont = torch.tensor([c[:-1]] * len(rows), device=self.device)
                    logits = self._model(input_ids=cont, attention_mask=torch.cat([mask, torch.ones_like(cont)], 1),
                                         past_key_values=copy.deepcopy(out.past_key_values), use_cache=True).logits
                    logprobs = logits.float().log_softmax(-1)
                    for step, token in enumerate(c[1:]):
                        score += logprobs[:, step, token]
                columns.append(score)
        return torch.stack(columns, 1).tolist()

    # --- scoring capabilities of reward judges (judges/reward.py) -----------------------------------
    def score_sequences(self, conversations: list[Conversation]) -> list[float]:
        """The reward-model score of each whole conversation (its last message is the answer scored):
        AutoModelForSequenceClassification with one label on the same folder and adapter. Templated
        as TRL's RewardTrainer templates a conversational row (no generation prompt), so a model
        trained there scores the same token ids here. Loaded on first use, apart from the causal model."""
        import torch

        model, tok = self._load_reward_model(), self._load_tokenizer()
        rows = [tok.apply_chat_template(_dicts(conv), tokenize=True, return_dict=True)["input_ids"]
                for conv in conversations]
        scores: list[float] = [0.0] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for start in range(0, len(order), self.spec.batch_size):
            batch = order[start: start + self.spec.batch_size]
            ids, mask = _right_padded([rows[i] for i in batch], tok.pad_token_id, self.device)
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
            for i, value in zip(batch, logits[:, 0].tolist()):
                scores[i] = value
        return scores

    def _load_reward_model(self):
        if self._reward_model is not None:
            return self._reward_model
        import torch
        from transformers import AutoModelForSequenceClassification

        from transformers.utils import logging as hf_logging

        tok = self._load_tokenizer()
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report ("score.weight MISSING") is checked just below
        try:
            model, info = _quietly(lambda: AutoModelForSequenceClassification.from_pretrained(
                self.path, num_labels=1, dtype=getattr(torch, self.spec.dtype), output_loading_info=True))
        finally:
            hf_logging.set_verbosity(level)
        head = [k for k in info["missing_keys"] if k.split(".")[0] in ("score", "classifier")]
        if head and not _adapter_saves_head(self.spec.adapter):
            raise ConfigError(f"model '{self.spec.name}': {self.path} has no reward head ({head[0]} is not in its "
                              "weights): point at a trained reward model (harness train reward) or its adapter")
        model.config.pad_token_id = tok.pad_token_id  # what TRL sets: the last non-pad token is scored
        self._reward_model = self._with_adapter(model)
        return self._reward_model

    def completion_logprobs(self, conversations: list[Conversation], adapter: bool = True) -> list[float]:
        """Sum of log P(token) over each conversation's last message (the answer, with whatever the
        chat template closes it with), given the messages before it. `adapter=False` switches the
        LoRA adapter off: the reference of a DPO-trained adapter (what TRL's DPOTrainer compares with)."""
        import contextlib

        import torch

        self._load()
        if not adapter and not self.spec.adapter:
            raise ValueError(f"model '{self.spec.name}' has no adapter to switch off")
        rows = [self._answer_split(conv) for conv in conversations]
        sums: list[float] = [0.0] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        off = self._model.disable_adapter() if not adapter else contextlib.nullcontext()
        with off, torch.inference_mode():
            for start in range(0, len(order), self.spec.batch_size):
                batch = order[start: start + self.spec.batch_size]
                for i, value in zip(batch, self._answer_logprobs([rows[i] for i in batch])):
                    sums[i] = value
        return sums

    def _answer_split(self, conv: Conversation) -> tuple[list[int], list[int]]:
        """(prompt ids, answer ids): the prompt as generation sees it, the answer as the template
        renders it after that prompt, tokenized apart (as TRL's DPO tokenizes prompt and completion)."""
        tok = self._tokenizer
        if not conv or conv[-1].role != "assistant":
            raise ValueError("completion_logprobs needs conversations that end with an assistant message")
        [prompt] = self._encode_texts([conv[:-1]])
        full = tok.apply_chat_template(_dicts(conv), tokenize=False)
        if not full.startswith(prompt):
            raise ConfigError(f"model '{self.spec.name}': its chat template renders an answer differently from its "
                              "generation prompt, so the answer's log-probability is undefined: use another template")
        prompt_ids = tok(prompt, add_special_tokens=self._adds_bos([prompt]))["input_ids"]
        return prompt_ids, tok(full[len(prompt):], add_special_tokens=False)["input_ids"]

    def _answer_logprobs(self, rows: list[tuple[list[int], list[int]]]) -> list[float]:
        """Left-padded (explicit position ids, so padding changes nothing): only the last positions'
        logits are kept, the ones that predict the answer tokens."""
        import torch

        seqs = [p + a for p, a in rows]
        width, keep = max(map(len, seqs)), max(len(a) for _, a in rows) + 1
        pad = self._tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self._model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
        logprobs = logits.float().log_softmax(-1)  # [batch, keep, vocab]: position j predicts token width-keep+j+1
        out = []
        for b, (_, answer) in enumerate(rows):
            targets = torch.tensor(answer, device=self.device)
            steps = torch.arange(keep - 1 - len(answer), keep - 1, device=self.device)
            out.append(float(logprobs[b, steps, targets].sum()))
        return out

    def close(self) -> None:
        self._model = self._tokenizer = self._reward_model = None


def _dicts(conv: Conversation) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in conv]


def _right_padded(rows: list[list[int]], pad: int, device):
    import torch

    width = max(map(len, rows))
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    return ids, mask


def _adapter_saves_head(adapter: str | None) -> bool:
    """Whether a peft adapter carries its own classification head (LoRA with task_type SEQ_CLS
    saves `score` / `classifier` as modules_to_save)."""
    config = Path(adapter) / "adapter_config.json" if adapter else None
    if config is None or not config.is_file():
        return False
    settings = json.loads(config.read_text())
    return settings.get("task_type") == "SEQ_CLS" or bool({"score", "classifier"} & set(settings.get("modules_to_save") or []))


def _quietly(load):
    """Run `load` without transformers' "Loading weights" bar: the harness draws its own progress,
    and a tqdm line per model load is noise in its output (HARNESS_VERBOSE=1 keeps it)."""
    import os

    from transformers.utils import logging as hf_logging

    if os.environ.get("HARNESS_VERBOSE") or not hf_logging.is_progress_bar_enabled():
        return load()
    hf_logging.disable_progress_bar()
    try:
        return load()
    finally:
        hf_logging.enable_progress_bar()
