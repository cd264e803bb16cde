"""Altair chart builders: every page draws through these. Charts take their container's width
(`width="container"`) and are never faceted side by side, so nothing is cut off in a narrow window;
a page puts several of them in columns, which Streamlit stacks on a small screen."""

from __future__ import annotations

import altair as alt
import pandas as pd
from altair.utils.schemapi import disable_debug_mode

# Altair validates every schema object against the Vega-Lite JSON schema as it is built (its "debug
# mode"): most of a page's time on a busy machine. These builders are pinned by tests, so skip it.
disable_debug_mode()

MARK_COLOURS = alt.Scale(domain=["significantly above next", "not established", "last", "not tested"],
                         range=["#1b7837", "#888888", "#bbbbbb", "#4c78a8"])


def ratings_with_ci(df: pd.DataFrame, label: str = "rating") -> alt.LayerChart:
    """One panel's models: the rating as a point with its interval as a rule, best on top, the
    printed rating beside it. Colour: the table's "vs next below" mark (the paired test)."""
    low, high = float(df["ci_low"].fillna(df["rating"]).min()), float(df["ci_high"].fillna(df["rating"]).max())
    pad = max(5.0, 0.08 * (high - low))
    x_scale = alt.Scale(domain=[low - pad, high + pad], zero=False, nice=False)
    base = alt.Chart().encode(
        y=alt.Y("model:N", sort=alt.EncodingSortField("rating", order="descending"), title=None,
                axis=alt.Axis(labelLimit=220)),
        tooltip=["rank", "model", alt.Tooltip("rating:Q", format=".1f"), alt.Tooltip("ci_low:Q", format=".1f"),
                 alt.Tooltip("ci_high:Q", format=".1f"), "battles", "vs next below"])
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q", scale=x_scale, title=label, axis=alt.Axis(format=",.0f", tickCount=5)), x2="ci_high:Q")
    points = base.mark_point(size=80, filled=True, opacity=1).encode(
        x="rating:Q", color=alt.Color("vs next below:N", title="vs the next model", scale=MARK_COLOURS,
                                      legend=None))  # the table beside it names the mark
    return alt.layer(bars, points, data=df).properties(width="container", height=alt.Step(24))


def bars(df: pd.DataFrame, x: str, y: str, color: str | None = None, column: str | None = None, fmt: str = ".2f",
         domain: tuple | None = None, err: tuple[str, str] | None = None, title: str = "", rule: float | None = None):
    """Horizontal bars (optionally with an error rule and a reference line at `rule`), the value
    written beside each bar so a zero still reads as a number. `column`: one panel per value,
    stacked (a facet cannot take the container's width; pages that want panels side by side draw
    one chart per panel in columns)."""
    scale = alt.Scale(domain=list(domain)) if domain else alt.Undefined
    shown = [c for c in (y, x, color, *(err or ())) if c]  # a few tooltip fields: each costs Altair time
    base = alt.Chart().encode(y=alt.Y(f"{y}:N", title=None, sort="-x", axis=alt.Axis(labelLimit=220)),
                              tooltip=shown)
    chart = base.mark_bar(opacity=0.8).encode(
        x=alt.X(f"{x}:Q", scale=scale, axis=alt.Axis(format=fmt, tickCount=5), title=title))
    if color:
        chart = chart.encode(color=alt.Color(f"{color}:N", legend=alt.Legend(orient="bottom")), yOffset=f"{color}:N")
    layers = [chart]
    if not color:
        layers.append(base.mark_text(align="left", dx=4, fontSize=11).encode(
            x=alt.X(f"{x}:Q"), text=alt.Text(f"{x}:Q", format=fmt)))
    if err:
        layers.append(base.mark_rule(color="black").encode(x=f"{err[0]}:Q", x2=f"{err[1]}:Q"))
    if rule is not None:
        # its own chart: the bars' y sort (by x) cannot sort a constant
        layers.append(alt.Chart().mark_rule(strokeDash=[4, 3], color="#555").encode(x=alt.datum(rule)))
    if column:
        return alt.layer(*layers, data=df).properties(width=300).facet(facet=alt.Facet(f"{column}:N", title=None), columns=1)
    return alt.layer(*layers, data=df).properties(width="container")


def heatmap(df: pd.DataFrame, x: str, y: str, value: str, fmt: str = ".2f", scheme: str = "redblue",
            domain: tuple | None = None, order: list[str] | None = None, title: str | None = None,
            link: str | None = None):
    """Cells coloured by `value` with the value written in them; `link`: a column of URLs a click
    on a cell opens (the battles behind it)."""
    scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    base = alt.Chart(df).encode(
        # upright labels: at -40 degrees two neighbours overlapped on a 34 px cell and Vega hid every other one
        x=alt.X(f"{x}:N", sort=order, title=None, axis=alt.Axis(labelAngle=-90, labelLimit=160, labelOverlap=False)),
        y=alt.Y(f"{y}:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)),
        tooltip=[c for c in df.columns if c != link])
    rect = base.mark_rect(cursor="pointer" if link else "default").encode(
        color=alt.Color(f"{value}:Q", scale=scale, title=title or value, legend=alt.Legend(format=fmt)))
    if link:
        rect = rect.encode(href=f"{link}:N")
    lo, hi = (domain or (df[value].min(), df[value].max()))
    strong = (alt.datum[value] > lo + 0.8 * (hi - lo)) | (alt.datum[value] < lo + 0.2 * (hi - lo)) \
        if scheme == "redblue" else alt.datum[value] > lo + 0.55 * (hi - lo)
    text = base.mark_text(fontSize=11).encode(text=alt.Text(f"{value}:Q", format=fmt),
                                              color=alt.condition(strong, alt.value("white"), alt.value("black")))
    if link:
        text = text.encode(href=f"{link}:N")
    cell = 34 if len(df) < 400 else 18
    layers = [rect, text] if len(df) < 400 else [rect]
    return alt.layer(*layers).properties(width=alt.Step(cell), height=alt.Step(cell))


def run_times(df: pd.DataFrame) -> alt.Chart:
    """Wall time per run (newest first), coloured by status."""
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("wall_s:Q", title="wall time (s)"),
        y=alt.Y("label:N", sort=alt.EncodingSortField("started_at", order="descending"), title=None,
                axis=alt.Axis(labelLimit=320)),
        color=alt.Color("status:N", legend=alt.Legend(orient="bottom"),
                        scale=alt.Scale(domain=["finished", "running", "failed", "interrupted"],
                                        range=["#1b7837", "#4c78a8", "#d6604d", "#f4a582"])),
        tooltip=[c for c in df.columns if c != "label"]).properties(height=alt.Step(18), width="container")


def curve(df: pd.DataFrame, metric: str) -> alt.Chart:
    """One training metric against the step, a line per model, on its own y axis. The legend stays
    at the side: Streamlit fits a fixed-height chart, legend and title included, into its height,
    so a legend below would squash the plot."""
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("step:Q", title="step"), y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
        color=alt.Color("model:N"),
        tooltip=["model", "step", alt.Tooltip("value:Q", format=".4g")]).properties(width="container", height=200)
