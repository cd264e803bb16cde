"""Altair chart builders: every page draws through these."""

from __future__ import annotations

import altair as alt
import pandas as pd


def ratings_with_ci(df: pd.DataFrame, label: str = "rating") -> alt.FacetChart:
    """Points with CI error bars per model, one panel per judge / dimension on one shared, padded x
    scale. Colour: the "vs next below" column (app.screens.leaderboard: the Holm-corrected paired
    test of each model against the next one in BT order); green: significantly above it."""
    low, high = float(df["ci_low"].min()), float(df["ci_high"].max())
    pad = max(10.0, 0.05 * (high - low))
    x_scale = alt.Scale(domain=[low - pad, high + pad], zero=False, nice=False)
    base = alt.Chart().encode(
        y=alt.Y("model:N", sort=alt.EncodingSortField("rating", order="descending"), title=None,
                axis=alt.Axis(labelLimit=320)),
        tooltip=["model", "panel", alt.Tooltip("rating:Q", format=".1f"), alt.Tooltip("ci_low:Q", format=".1f"),
                 alt.Tooltip("ci_high:Q", format=".1f"), "battles", "vs next below"])
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q", scale=x_scale, title=label, axis=alt.Axis(format=",.0f", tickCount=5)), x2="ci_high:Q")
    points = base.mark_point(size=80, filled=True, opacity=1).encode(
        x="rating:Q", color=alt.Color("vs next below:N", title="vs the next model", scale=alt.Scale(
            domain=["significantly above", "not established", "last", "not tested"],
            range=["#1b7837", "#888888", "#bbbbbb", "#dddddd"])))
    return alt.layer(bars, points, data=df).properties(width=230, height=alt.Step(22)).facet(
        facet=alt.Facet("panel:N", title=None), columns=2).resolve_scale(y="independent")


def bars(df: pd.DataFrame, x: str, y: str, color: str | None = None, column: str | None = None,
         fmt: str = ".2f", domain: tuple | None = None, err: tuple[str, str] | None = None, title: str = ""):
    """Horizontal bars (optionally with an error rule), one wrapped panel per `column` value."""
    scale = alt.Scale(domain=list(domain)) if domain else alt.Undefined
    base = alt.Chart(df).encode(y=alt.Y(f"{y}:N", title=None, sort="-x", axis=alt.Axis(labelLimit=320)),
                                tooltip=[c for c in df.columns if not str(c).startswith("_")])
    chart = base.mark_bar().encode(x=alt.X(f"{x}:Q", scale=scale, axis=alt.Axis(format=fmt), title=title))
    if color:
        chart = chart.encode(color=f"{color}:N", yOffset=f"{color}:N")
    layers = [chart]
    if not color:  # the value beside each bar, so a zero still reads as a number
        layers.append(base.mark_text(align="left", dx=4, fontSize=11).encode(
            x=alt.X(f"{x}:Q"), text=alt.Text(f"{x}:Q", format=fmt)))
    if err:
        layers.append(base.mark_rule(color="black").encode(x=f"{err[0]}:Q", x2=f"{err[1]}:Q"))
    out = alt.layer(*layers, data=df).properties(width=260)
    return out.facet(facet=alt.Facet(f"{column}:N", title=None), columns=2) if column else out


def heatmap(df: pd.DataFrame, x: str, y: str, value: str, fmt: str = ".2f", scheme: str = "redblue",
            domain: tuple | None = None, order: list[str] | None = None, title: str | None = None):
    scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    base = alt.Chart(df).encode(
        x=alt.X(f"{x}:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40, labelLimit=200)),
        y=alt.Y(f"{y}:N", sort=order, title=None, axis=alt.Axis(labelLimit=320)),
        tooltip=[c for c in df.columns])
    rect = base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=scale, title=title or value,
                                                   legend=alt.Legend(format=fmt)))
    lo, hi = (domain or (df[value].min(), df[value].max()))
    strong = (alt.datum[value] > lo + 0.8 * (hi - lo)) | (alt.datum[value] < lo + 0.2 * (hi - lo)) \
        if scheme == "redblue" else alt.datum[value] > lo + 0.55 * (hi - lo)
    text = base.mark_text(fontSize=11).encode(text=alt.Text(f"{value}:Q", format=fmt),
                                              color=alt.condition(strong, alt.value("white"), alt.value("black")))
    cell = 34 if len(df) < 400 else 18
    layers = [rect, text] if len(df) < 400 else [rect]
    return alt.layer(*layers).properties(width=alt.Step(cell), height=alt.Step(cell))


def run_times(df: pd.DataFrame) -> alt.Chart:
    """Wall time per run (newest first), coloured by status."""
    return alt.Chart(df).mark_bar().encode(
        x=alt.X("wall_s:Q", title="wall time (s)"),
        y=alt.Y("label:N", sort=alt.EncodingSortField("started_at", order="descending"), title=None,
                axis=alt.Axis(labelLimit=320)),
        color=alt.Color("status:N", scale=alt.Scale(domain=["finished", "running", "failed", "interrupted"],
                                                    range=["#1b7837", "#4c78a8", "#d6604d", "#f4a582"])),
        tooltip=[c for c in df.columns if c != "label"]).properties(height=alt.Step(18), width=520)


def lines(df: pd.DataFrame, x: str, y: str, color: str, column: str | None = None):
    chart = alt.Chart(df).mark_line(point=True).encode(x=f"{x}:Q", y=f"{y}:Q", color=f"{color}:N",
                                                      tooltip=list(df.columns)).properties(width=320, height=200)
    return chart.facet(column=alt.Column(f"{column}:N", title=None)) if column else chart
