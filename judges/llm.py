"""Judges that run on any ModelBackend: prompt judges (pairwise, single grading, reference-guided,
multi-turn) and a PandaLM-style judge. The same code judges with GPT-4 through the openai backend,
with a vLLM-served model, or with a model in this process."""

from __future__ import annotations

from pathlib import Path

import judges.prompts
from judges.base import DEFAULT_DIMENSIONS, JudgeOutput, PairItem, SingleItem, dimension_names_problem
from judges.parse import CHOICES, PARSER_VERSION, choice_output, parse_pairwise, parse_pandalm, parse_score
from judges.prompts import PAIRWISE_SYSTEM, PROMPT_VERSION, SINGLE_SYSTEM, pairwise_prompt, pandalm_prompt, single_prompt
from harness.errors import ConfigError
from harness.models.base import (ChoiceScorer, Conversation, GenerationParams, Message, ModelBackend,
                                 StreamingBackend, prompt_token_counts, stable_hash)


# The templates' source is hashed into every judgment key, so an edit without a version bump
# still never mixes old and new verdicts.
PROMPTS_HASH = stable_hash(Path(judges.prompts.__file__).read_text())


class LLMJudge:
    """style: "prompt" (our prompts, nonce-tagged verdict lines) or "pandalm" (first line 1/2/Tie).
    kind: "pairwise" or "single" (1-10 grading; prompt style only).
    dimension_mode: "joint" (one call returns every dimension) or "per_dimension" (one call each).
    """

    def __init__(self, name: str, backend: ModelBackend, *, style: str = "prompt", kind: str = "pairwise",
                 dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS, dimension_mode: str = "joint",
                 chain_of_thought: bool = True, params: GenerationParams | None = None,
                 max_parse_retries: int = 2, retry_temperature: float = 0.7, decode: str = "generate"):
        if kind == "single" and style != "prompt":
            raise ValueError("single grading needs the prompt style")
        problem = dimension_names_problem(dimensions)
        if problem:
            raise ConfigError(f"judge '{name}': dimensions: {problem}")
        self.name, self.backend, self.style, self.kind = name, backend, style, kind
        self.dimensions = ("overall",) if kind == "single" else tuple(dimensions)
        # PandaLM answers one verdict per call, so several dimensions mean several calls.
        self.dimension_mode = "per_dimension" if style == "pandalm" and len(self.dimensions) > 1 else dimension_mode
        self.chain_of_thought = chain_of_thought
        self.params = params or GenerationParams(max_new_tokens=512)
        self.max_parse_retries, self.retry_temperature = max_parse_retries, retry_temperature
        # "choice": pick PandaLM's first line (1 / 2 / Tie) by likelihood. Small local models rarely
        # follow a free-text format, but every one of them has a most likely first line.
        if decode == "choice" and (style != "pandalm" or not isinstance(backend, ChoiceScorer)):
            raise ConfigError(f"judge '{name}': decode: choice needs style: pandalm and a backend that can "
                              "score choices (hf); use decode: generate")
        self.decode = decode

    @property
    def chunk_size(self) -> int:
        return getattr(self.backend, "chunk_size", 16)

    def fingerprint(self) -> str:
        return stable_hash({
            "backend": self.backend.fingerprint(), "prompts": [PROMPT_VERSION, PROMPTS_HASH], "parser": PARSER_VERSION,
            "style": self.style, "kind": self.kind, "dimensions": self.dimensions,
            "mode": self.dimension_mode, "cot": self.chain_of_thought, "params": self.params.key(),
            "retries": [self.max_parse_retries, self.retry_temperature], "decode": self.decode,
        })

    def resampled(self, sample: int) -> "LLMJudge":
        """The same judge drawing sample number `sample` (seeded, at the retry temperature): a
        different fingerprint, so repeated grades are stored as rows of their own."""
        copy = LLMJudge.__new__(LLMJudge)
        copy.__dict__.update(self.__dict__)
        copy.params = self.params.model_copy(update={"temperature": self.retry_temperature, "seed": sample})
        return copy

    def judge(self, items: list[PairItem | SingleItem]) -> list[dict[str, JudgeOutput]]:
        """For each item, {dimension: output}; in joint mode the dimensions share one output."""
        groups = [self.dimensions] if self.dimension_mode == "joint" else [(d,) for d in self.dimensions]
        results: list[dict[str, JudgeOutput]] = [{} for _ in items]
        for dims in groups:
            outputs = self._call_with_retries(items, dims)
            for result, output in zip(results, outputs):
                result.update({d: output for d in dims})
        return results

    def _call_with_retries(self, items, dims: tuple[str, ...]) -> list[JudgeOutput]:
        if self.decode == "choice":
            return self._choose(items, dims)
        outputs: list[JudgeOutput | None] = [None] * len(items)
        spent = [(0, 0)] * len(items)  # tokens of the attempts before: a retry costs them too
        todo = list(range(len(items)))
        for attempt in range(1, self.max_parse_retries + 2):
            completions = self.backend.generate([self._conversation(items[i], dims) for i in todo],
                                                self._params_for(attempt))
            still = []
            for i, completion in zip(todo, completions):
                spent[i] = (spent[i][0] + completion.prompt_tokens, spent[i][1] + completion.completion_tokens)
                outputs[i] = self._output(completion, items[i], dims, attempt)
                outputs[i].prompt_tokens, outputs[i].completion_tokens = spent[i]
                if not outputs[i].parsed and outputs[i].error is None:
                    still.append(i)
            todo = still
            if not todo:
                break
        return outputs  # type: ignore[return-value]

    @property
    def max_concurrency(self) -> int:
        return getattr(self.backend, "max_concurrency", 1)

    @property
    def streaming(self) -> bool:
        """True when `ajudge` can judge one item at a time (a StreamingBackend; not choice decoding)."""
        return self.decode != "choice" and isinstance(self.backend, StreamingBackend)

    async def ajudge(self, item: PairItem | SingleItem) -> dict[str, JudgeOutput]:
        """`judge` for one item, through the backend's `acomplete` (harness.streaming drives it)."""
        groups = [self.dimensions] if self.dimension_mode == "joint" else [(d,) for d in self.dimensions]
        result: dict[str, JudgeOutput] = {}
        for dims in groups:
            spent = (0, 0)
            for attempt in range(1, self.max_parse_retries + 2):
                completion = await self.backend.acomplete(self._conversation(item, dims), self._params_for(attempt))
                spent = (spent[0] + completion.prompt_tokens, spent[1] + completion.completion_tokens)
                output = self._output(completion, item, dims, attempt)
                output.prompt_tokens, output.completion_tokens = spent
                if output.parsed or output.error is not None:
                    break
            result.update({d: output for d in dims})
        return result

    async def aclose(self) -> None:
        await self.backend.aclose()

    def _params_for(self, attempt: int) -> GenerationParams:
        if attempt == 1:
            return self.params
        # a fresh sample: greedy decoding would repeat the same output
        return self.params.model_copy(update={"temperature": self.retry_temperature, "seed": attempt})

    def _output(self, completion, item, dims: tuple[str, ...], attempt: int) -> JudgeOutput:
        if not completion.ok:  # no output at all: the backend already retried the transport,
            return JudgeOutput(raw="", attempts=attempt, error=completion.error)  # and a fresh sample
        return self._parse(completion.text, item, dims, attempt)  # cannot fix an endpoint that is down

    def _choose(self, items, dims: tuple[str, ...]) -> list[JudgeOutput]:
        conversations = [self._conversation(item, dims) for item in items]
        scores = self.backend.score_choices(conversations, CHOICES)
        outputs = [self._parse(choice_output(row), item, dims, attempt=1) for item, row in zip(items, scores)]
        for output, row, tokens in zip(outputs, scores, prompt_token_counts(self.backend, conversations)):
            output.choice_logprobs = tuple(float(v) for v in row)  # stored as columns: merge: calibrated
            output.prompt_tokens, output.completion_tokens = tokens, 0 if tokens is not None else None
        return outputs

    def _conversation(self, item, dims: tuple[str, ...]) -> Conversation:
        if self.style == "pandalm":
            return (Message("user", pandalm_prompt(item, dims[0] if dims != ("overall",) else None)),)
        if self.kind == "single":
            return (Message("system", SINGLE_SYSTEM), Message("user", single_prompt(item, self.chain_of_thought)))
        return (Message("system", PAIRWISE_SYSTEM),
                Message("user", pairwise_prompt(item, dims, self.chain_of_thought)))

    def _parse(self, text: str, item, dims: tuple[str, ...], attempt: int) -> JudgeOutput:
        output = JudgeOutput(raw=text, attempts=attempt)
        if self.style == "pandalm":
            verdict = parse_pandalm(text)
            output.verdicts = {d: verdict for d in dims} if verdict else {}
        elif self.kind == "single":
            output.score = parse_score(text, item.nonce)
        else:
            output.verdicts = parse_pairwise(text, item.nonce, dims) or {}
        return output

    def close(self) -> None:
        self.backend.close()
