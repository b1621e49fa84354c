"""What the report stage leaves in a finished demo: every figure as PNG and SVG, drawn from
the tables (the SVG the rule wrote is byte-identical to the figure redrawn here, whose
artists carry the table's numbers), the feature browser in headless Chromium, and
`snakemake --report`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from matplotlib.container import BarContainer, ErrorbarContainer

from protsae.config import expand_sweeps
from protsae.figures import (
    figure_sweeps,
    max_activation_figure,
    sae_quality_figure,
    save_figure,
    sweep_figure,
)
from protsae.figures.max_activation import Membership, activation_histograms
from protsae.figures.probes import TASK_TITLES
from protsae.latents.classes import PATTERN_CLASSES
from protsae.steering.summary import MIN_BIN_POSITIONS

from .conftest import run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
MODEL = "esm2_t4_demo"  # the bundled demo ESM-2 (resources/demo/esm2_t4_demo.pt)


@pytest.fixture(scope="module")
def run(finished: Path):
    config = yaml.safe_load((finished / "config/small.yaml").read_text())
    return finished / config["results"], config


def assert_same_svg(figure, drawn: Path, tmp_path: Path) -> None:
    """The rule's PNG is a non-empty PNG and its SVG is the figure redrawn from the table."""
    png = drawn.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    save_figure(figure, tmp_path / "again.png", tmp_path / "again.svg")
    assert drawn.read_bytes() == (tmp_path / "again.svg").read_bytes(), drawn


def test_sweep_figures_match_the_latent_summary(run, tmp_path):
    results, config = run
    summary = pd.read_csv(results / "tables/latent_summary.csv")
    kept, _ = figure_sweeps(config["sae"]["sweeps"])
    assert kept  # the demo has sweeps to draw
    for number, sweep in kept.items():
        figure = sweep_figure(summary, sweep)
        classes_ax, family_ax = figure.axes
        rows = summary.set_index(["layer", "k", "width"])
        points = [tuple(p) for p in sweep]
        for line in classes_ax.get_lines():
            assert line.get_ydata().tolist() == [rows.loc[p, line.get_label()] for p in points]
        assert sorted(line.get_label() for line in classes_ax.get_lines()) == sorted(
            PATTERN_CLASSES
        )
        assert family_ax.get_lines()[0].get_ydata().tolist() == [
            rows.loc[p, "family_specific"] for p in points
        ]
        assert_same_svg(figure, results / f"figures/sweep-{number}.svg", tmp_path)


def test_quality_figure_matches_the_metrics_table(run, tmp_path):
    results, config = run
    metrics = pd.read_csv(results / "tables/sae_metrics.csv")
    figure = sae_quality_figure(metrics)
    fve_ax, l0_ax, _, lr_ax = figure.axes
    ordered = metrics.sort_values(["layer", "k", "width"])
    for ax, column in ((fve_ax, "fve"), (l0_ax, "l0"), (lr_ax, "loss_recovered")):
        (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert np.allclose([b.get_height() for b in bars], ordered[column], equal_nan=True)
        assert len(ax.texts) == ordered[column].isna().sum()  # each missing value says n/a
    spread = [c for c in lr_ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(spread) == 1  # loss recovered: ± sd over the mask draws
    assert len(ordered) == len(expand_sweeps(config["sae"]["sweeps"]))
    assert_same_svg(figure, results / "figures/sae_quality.svg", tmp_path)


def test_max_activation_figures_match_the_latent_tables(run, tmp_path):
    results, config = run
    members = Membership.from_swissprot(results / "sequences/swissprot.parquet")
    for spec in expand_sweeps(config["sae"]["sweeps"]):
        folder = results / f"latents/{MODEL}/L{spec.layer}/{spec.name}"
        families = pq.read_table(folder / "families.parquet").to_pandas()
        stats = pq.read_table(folder / "seq_stats.parquet").to_pandas()
        family_of = [None] * spec.width
        for latent, family in zip(families.latent, families.family, strict=True):
            family_of[latent] = family
        hist = activation_histograms(folder / "seq_stats.parquet", family_of, members)
        # every (latent, sequence) row of seq_stats is counted once, in family or not
        assert (hist.in_family.sum(1) + hist.other.sum(1)).tolist() == np.bincount(
            stats.latent, minlength=spec.width
        ).tolist()
        expected_max = stats.groupby("latent").max_act.max()
        assert np.allclose(hist.max_act[expected_max.index], expected_max)
        figure = max_activation_figure(
            families, hist, f"{MODEL} layer {spec.layer}, k {spec.k}, width {spec.width}"
        )
        latents_ax = figure.axes[2]
        drawn = sum(p.get_data().values.sum() for p in latents_ax.patches)
        assert drawn == (hist.n_sequences > 0).sum()  # each active latent once
        name = f"max_activation-L{spec.layer}-k{spec.k}-w{spec.width}.svg"
        assert_same_svg(figure, results / "figures" / name, tmp_path)


def test_probe_figures_match_the_probe_tables(run, tmp_path):
    from protsae.figures import probe_coefficients_figure, probe_metrics_figure
    from protsae.figures.probes import read_coefficients

    results, _ = run
    probes = pd.read_csv(results / "tables/probes.csv")
    figure = probe_metrics_figure(probes)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert len(panels) == len(set(probes.task))
    for ax in panels:
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert all(float(t).is_integer() for t in ax.get_xticks())
        for container in bars:
            task = next(t for t in set(probes.task) if TASK_TITLES.get(t, t) in ax.get_title())
            rows = probes[(probes.task == task) & (probes.features == container.get_label())]
            assert np.allclose(container.lines[0].get_ydata(), rows.sort_values("layer").value)
        labels = {c.get_label() for c in bars} | {
            ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")
        }
        assert labels == set(probes.features)  # ESM, SAE and both controls drawn
    assert_same_svg(figure, results / "figures/probes.svg", tmp_path)
    coefficients = read_coefficients(
        sorted((results / "probes").glob("*/L*/*/coefficients.parquet"))
    )
    figure = probe_coefficients_figure(coefficients, probes)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert len(panels) == len(coefficients.groupby(["task", "layer", "output"]))
    for ax in panels:
        assert len(ax.patches) == 2  # ESM and SAE at their own selected strengths
        for patch in ax.patches:
            values, edges, _ = patch.get_data()
            assert np.isclose((values * np.diff(edges)).sum(), 1.0)
    assert_same_svg(figure, results / "figures/probe_coefficients.svg", tmp_path)


def test_steering_figures_match_the_summaries(run, tmp_path):
    from protsae.figures import steering_figure

    results, config = run
    for spec in expand_sweeps(config["sae"]["sweeps"]):
        summary = pd.read_parquet(
            results / f"steering/{MODEL}/L{spec.layer}/{spec.name}/summary.parquet"
        )
        title = f"{MODEL} layer {spec.layer}, k {spec.k}, width {spec.width}"
        figure = steering_figure(summary, title)
        (ax,) = figure.axes
        average = summary[(summary.scope == "average") & summary.bin_low.notna()]
        if average.empty:
            assert "no latent was steered" in ax.texts[0].get_text()
        for multiplier, rows in average.groupby("multiplier"):
            (line,) = [x for x in ax.get_lines() if x.get_label() == f"×{multiplier:g}"]
            rows = rows.sort_values("bin_low")
            drawn = rows.fraction_unchanged.where(rows.n_positions >= MIN_BIN_POSITIONS)
            assert np.allclose(line.get_ydata(), drawn, equal_nan=True)
        if not average.empty:
            (baseline,) = [x for x in ax.get_lines() if x.get_label() == "no clamp"]
            assert (
                np.isfinite(baseline.get_ydata()).any()
                or (average.n_positions < MIN_BIN_POSITIONS).all()
            )
        name = f"steering-L{spec.layer}-k{spec.k}-w{spec.width}.svg"
        assert_same_svg(figure, results / "figures" / name, tmp_path)


def test_feature_browser_in_chromium(run, chromium, tmp_path_factory):
    results, config = run
    specs = expand_sweeps(config["sae"]["sweeps"])
    classes = pd.concat(
        pq.read_table(results / f"latents/{MODEL}/L{s.layer}/{s.name}/classes.parquet")
        .to_pandas()
        .assign(sae=f"L{s.layer}-k{s.k}-w{s.width}")
        for s in specs
    )
    index = (results / "browser/index.html").as_uri()
    dom = chromium.dom(index + "#size=all")
    assert len(re.findall(r"<tr data-latent=", dom)) == len(classes) == sum(s.width for s in specs)
    common = classes.pattern_class.value_counts().index[0]
    dom = chromium.dom(index + f"#size=all&class={common}")
    shown = re.findall(r'<td class="pattern-class"[^>]*>(\w+)</td>', dom)
    assert shown == [common] * int((classes.pattern_class == common).sum())
    active = classes[classes.n_sequences > 0].iloc[0]
    page = (results / "browser/latent.html").as_uri() + f"#sae={active.sae}&latent={active.latent}"
    dom = chromium.dom(page)
    assert len(re.findall(r'<span class="res act"', dom)) > 0
    assert f"latent {active.latent}" in dom
    shot = tmp_path_factory.mktemp("artifacts") / "browser-latent.png"
    chromium.screenshot(page, shot)
    assert chromium.page_requests(index) == [] and chromium.page_requests(page) == []
    # one folder per SAE; each page leads with the latent's generated description, the planted
    # motifs (Swiss-Prot FT MOTIF lines) are drawn as tracks, lower quantiles have examples
    tracks = quantiles = 0
    for s in specs:
        folder = results / "browser" / f"L{s.layer}-k{s.k}-w{s.width}"
        described = pd.read_parquet(
            results / f"latents/{MODEL}/L{s.layer}/{s.name}/descriptions.parquet"
        )
        for row in described.itertuples():
            text = (folder / f"{row.latent}.js").read_text()
            payload = json.loads(text[len("protsaeLatent(") : -3])
            assert payload["description"] == (row.description or None)
            tracks += sum(bool(q.get("features")) for q in payload["sequences"])
            quantiles += bool(payload["quantiles"])
    assert tracks > 0 and quantiles > 0


def test_snakemake_report_builds_from_the_finished_demo(run, finished):
    results, _ = run
    from workflow_runs import snakemake

    snakemake(finished, "--configfile", "config/small.yaml", "--report", "report.html")
    report = (finished / "report.html").read_text(errors="replace")
    assert len(report) > 100_000
    for name in ("sae_quality.png", "sweep-1.png", "sae_metrics.csv", "latent_summary.csv"):
        assert name in report
    for category in ("SAEs", "Latents", "Tables", "Probes", "Steering"):
        assert category in report


def test_single_sae_sweep_is_skipped_with_a_log_line(demo_config):
    config = demo_config(
        **{"sae.sweeps": [{"layers": [2], "ks": [8], "widths": [256]}], "probes.layers": [2]}
    )
    done = run_snakemake("-n", "--configfile", str(config))
    assert "sweep 1 (layer 2, k 8, width 256) has a single SAE" in done.stdout + done.stderr
    assert "figure_sweep" not in done.stdout
    assert "figure_sae_quality" in done.stdout and "browser_sae" in done.stdout


def test_findings_summarise_the_finished_demo(run):
    """What `make demo` ends by printing: one line per SAE, per probe task and layer, and per
    steered SAE, each number with its spread or interval."""
    from protsae.findings import findings

    results, config = run
    lines = findings(results)
    specs = expand_sweeps(config["sae"]["sweeps"])
    for spec in specs:
        name = f"L{spec.layer}-k{spec.k}-w{spec.width}"
        assert any(line.startswith(f"SAE {name}: loss recovered") and "±" in line for line in lines)
        assert any(line.startswith(f"steering {name} (") for line in lines)
    probes = [line for line in lines if line.startswith("probe ")]
    assert len(probes) == 4 * len(config["probes"]["layers"])
    assert all("SAE − ESM" in line and "controls: majority" in line for line in probes)
