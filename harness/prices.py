"""What a judge costs: a price table in YAML, read by `harness judge-eval --prices FILE`.

    # prices.yaml
    judges:
      gpt-4o-judge: {usd_per_1m_input_tokens: 2.5, usd_per_1m_output_tokens: 10.0}
      smollm2-pandalm: {usd_per_hour: 0.10}     # a local judge: the machine's price per hour of calls

A judge-eval run's cost is its calls' tokens at the token prices plus their wall time at the hourly
price; it is unknown (not zero) when a priced quantity was not measured, e.g. token prices for a
judge kind that reports no token counts. A judge missing from the table has no cost.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import ConfigError


class Price(BaseModel):
    """One judge's prices (all default to 0: not charged)."""

    model_config = ConfigDict(extra="forbid")

    usd_per_1m_input_tokens: float = Field(0.0, ge=0)
    """US dollars per million prompt tokens (API judges)."""
    usd_per_1m_output_tokens: float = Field(0.0, ge=0)
    """US dollars per million generated tokens (API judges)."""
    usd_per_hour: float = Field(0.0, ge=0)
    """US dollars per hour of judge calls, wall time (a local or rented machine)."""

    def cost(self, tokens_in: int | None, tokens_out: int | None, seconds: float | None) -> float | None:
        """USD for calls that used these tokens and seconds; None when a priced quantity is unknown."""
        parts = ((self.usd_per_1m_input_tokens, tokens_in, 1e-6), (self.usd_per_1m_output_tokens, tokens_out, 1e-6),
                 (self.usd_per_hour, seconds, 1 / 3600))
        if any(price and amount is None for price, amount, _ in parts):
            return None
        return sum(price * amount * scale for price, amount, scale in parts if price)


class PriceTable(BaseModel):
    """Prices by judge name."""

    model_config = ConfigDict(extra="forbid")

    judges: dict[str, Price] = {}
    """Judge name (as in the suite) -> its prices."""

    def for_judge(self, name: str) -> Price | None:
        return self.judges.get(name)


def load_prices(path: str | Path | None) -> PriceTable:
    """The price table in `path` (an empty table for None); a bad file is one ConfigError line."""
    if path is None:
        return PriceTable()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: price table not found: check the path (see harness/prices.py for the format)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return PriceTable.model_validate(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}): see harness/prices.py") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{path}: field '{where}': {err['msg']}: see harness/prices.py for the format") from None
