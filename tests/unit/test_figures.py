"""Figure functions: each figure's artists carry exactly the numbers of the table drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matplotlib.container import ErrorbarContainer

from protsae.figures import (
    activation_histograms,
    example_latents,
    max_activation_figure,
    probe_coefficients_figure,
    probe_metrics_figure,
    sae_quality_figure,
    save_figure,
    steering_figure,
    sweep_figure,
    sweep_points,
    varying_axes,
)
from protsae.figures.max_activation import Membership
from protsae.latents.classes import PATTERN_CLASSES


def summary_table(points) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for layer, k, width in points:
        counts = rng.integers(0, 50, len(PATTERN_CLASSES))
        row = {"model": "m", "layer": layer, "k": k, "width": width}
        row.update(dict(zip(PATTERN_CLASSES, counts.tolist(), strict=True)))
        row["n_latents"] = int(counts.sum())
        row["family_specific"] = int(rng.integers(0, 9))
        row["concept_specific"] = int(rng.integers(0, 9))
        rows.append(row)
    return pd.DataFrame(rows)


def test_sweep_points_and_axes():
    sweep = {"layers": [8, 4, 4], "ks": [64], "widths": [4096]}
    assert sweep_points(sweep) == [(4, 64, 4096), (8, 64, 4096)]
    assert varying_axes(sweep_points(sweep)) == ["layer"]
    assert varying_axes([(24, 64, 4096)]) == []
    assert varying_axes(sweep_points({"layers": [1, 2], "ks": [3, 4], "widths": [5]})) == [
        "layer",
        "k",
    ]


def test_sweep_figure_lines_match_the_summary_table():
    grid = [(2, 8, 256), (4, 8, 256), (6, 8, 256), (2, 4, 256)]
    table = summary_table(grid).sample(frac=1, random_state=1)  # any row order
    figure = sweep_figure(table, sweep_points({"layers": [6, 2, 4], "ks": [8], "widths": [256]}))
    classes_ax, family_ax = figure.axes
    ordered = table[table.k == 8].sort_values("layer")
    lines = {line.get_label(): line for line in classes_ax.get_lines()}
    assert set(lines) == set(PATTERN_CLASSES)
    for name in PATTERN_CLASSES:
        assert lines[name].get_ydata().tolist() == ordered[name].tolist()
        assert np.allclose(np.round(lines[name].get_xdata()), [0, 1, 2])
    # every series visible: no two class lines share their x positions
    assert len({tuple(line.get_xdata()) for line in lines.values()}) == len(PATTERN_CLASSES)
    for ax in (classes_ax, family_ax):
        assert all(float(t).is_integer() for t in ax.get_yticks())
    family, concept = family_ax.get_lines()
    assert family.get_ydata().tolist() == ordered.family_specific.tolist()
    assert concept.get_label() == "concept_specific"
    assert concept.get_ydata().tolist() == ordered.concept_specific.tolist()
    assert [t.get_text() for t in family_ax.get_xticklabels()] == ["2", "4", "6"]


def test_sweep_figure_refuses_a_single_point_and_names_missing_saes():
    table = summary_table([(2, 8, 256)])
    with pytest.raises(ValueError, match="single SAE"):
        sweep_figure(table, [(2, 8, 256)])
    with pytest.raises(ValueError, match="layer 4 k 8 width 256"):
        sweep_figure(table, [[2, 8, 256], [4, 8, 256]])


@pytest.mark.parametrize("dead", [["dead_fraction"], ["dead_fraction_train", "dead_fraction_eval"]])
def test_quality_figure_bars_match_the_metrics_table(dead):
    rng = np.random.default_rng(1)
    metrics = pd.DataFrame(
        {"layer": [4, 2, 2], "k": [8, 8, 4], "width": [256, 256, 256]}
        | {c: rng.random(3) for c in ["fve", "loss_recovered", *dead]}
        | {"l0": [7.5, 6.0, 3.9]}
    )
    figure = sae_quality_figure(metrics)
    ordered = metrics.sort_values(["layer", "k", "width"])
    fve_ax, l0_ax, dead_ax, lr_ax = figure.axes
    for ax, columns in (
        (fve_ax, ["fve"]),
        (l0_ax, ["l0"]),
        (dead_ax, dead),
        (lr_ax, ["loss_recovered"]),
    ):
        assert [c.get_label() for c in ax.containers] == columns
        for container, column in zip(ax.containers, columns, strict=True):
            heights = [bar.get_height() for bar in container]
            assert np.allclose(heights, ordered[column].to_numpy())
    labels = [t.get_text() for t in fve_ax.get_xticklabels()]
    assert labels == ["L2 k4 w256", "L2 k8 w256", "L4 k8 w256"]


def test_quality_figure_draws_the_mask_draw_spread_as_error_bars():
    metrics = pd.DataFrame(
        {"layer": [2, 3], "k": [8, 8], "width": [256, 256], "fve": [0.9, 0.8], "l0": [8, 8]}
        | {"dead_fraction_eval": [0.1, 0.2], "loss_recovered": [0.95, 0.96]}
        | {"loss_recovered_std": [0.02, 0.03], "mask_draws": [5, 5]}
    )
    lr_ax = sae_quality_figure(metrics).axes[3]
    (errorbar,) = [c for c in lr_ax.containers if isinstance(c, ErrorbarContainer)]
    bars = errorbar.lines[2][0]  # the vertical error segments
    spans = [seg[1, 1] - seg[0, 1] for seg in bars.get_segments()]
    assert np.allclose(spans, [0.04, 0.06])  # ± one standard deviation
    assert "mean ± sd over 5 mask draws" in lr_ax.get_title()


def test_quality_figure_marks_a_missing_value():
    metrics = pd.DataFrame(
        {"layer": [2, 4], "k": [8, 8], "width": [256, 256], "fve": [0.9, 0.8], "l0": [8, 8]}
        | {"dead_fraction": [0.1, 0.2], "loss_recovered": [0.5, float("nan")]}
    )
    lr_ax = sae_quality_figure(metrics).axes[3]
    heights = [bar.get_height() for bar in lr_ax.containers[0]]
    assert heights[0] == 0.5 and np.isnan(heights[1])
    (label,) = lr_ax.texts
    assert label.get_text() == "n/a" and label.get_position()[0] == 1.0


def test_quality_figure_names_a_missing_column():
    with pytest.raises(ValueError, match="dead_fraction"):
        sae_quality_figure(
            pd.DataFrame(
                {"layer": [1], "k": [1], "width": [1], "fve": [1], "l0": [1], "loss_recovered": [1]}
            )
        )


@pytest.fixture
def planted(tmp_path):
    """Latent 0 fires strongly on members of IPR_A only; latent 1 fires alike on everyone;
    latent 2 never fires."""
    ids = [f"P{i}" for i in range(40)]
    families = [["IPR_A"] if i < 10 else ["IPR_B"] for i in range(40)]
    rows = []
    for i, seq in enumerate(ids):
        rows.append((0, seq, 9.0 + (i % 3) * 0.4 if i < 10 else 0.5))
        rows.append((1, seq, 1.0 + (i % 5) * 0.2))
    latent, seq, act = zip(*rows, strict=True)
    path = tmp_path / "seq_stats.parquet"
    table = pa.table(
        {
            "latent": pa.array(latent, pa.int32()),
            "id": list(seq),
            "max_act": pa.array(act, pa.float32()),
        }
    )
    pq.write_table(table, path, row_group_size=7)
    fams = pd.DataFrame(
        {
            "latent": [0, 1, 2],
            "family": ["IPR_A", "IPR_B", None],
            "f1": [0.95, 0.4, None],
            "family_specific": [True, False, False],
        }
    )
    return path, fams, Membership(ids, families)


def test_activation_histograms_split_members_from_the_rest(planted, monkeypatch):
    import protsae.figures.max_activation as module

    monkeypatch.setattr(module, "BATCH_ROWS", 9)  # several batches: streaming must add up
    path, fams, members = planted
    hist = activation_histograms(path, fams.family.tolist(), members, bins=10)
    assert np.allclose(hist.max_act, [9.8, 1.8, 0.0], atol=1e-5)
    assert hist.n_sequences.tolist() == [40, 40, 0]
    assert hist.in_family[0].sum() == 10 and hist.other[0].sum() == 30
    assert hist.in_family[0][9] == 10  # 9.0 / 9.8 and up: the top bin
    assert hist.other[0][0] == 30  # 0.5 / 9.8 is in the first bin
    assert hist.in_family[1].sum() == 30 and hist.other[1].sum() == 10
    assert hist.in_family[2].sum() == 0 and hist.other[2].sum() == 0
    assert example_latents(fams, hist) == (0, 1)


def test_max_activation_figure_draws_the_histograms(planted):
    path, fams, members = planted
    hist = activation_histograms(path, fams.family.tolist(), members, bins=10)
    figure = max_activation_figure(fams, hist, title="L1 k1 w3")
    specific_ax, other_ax, latents_ax = figure.axes
    in_family, other = specific_ax.patches
    assert np.array_equal(in_family.get_data().values, hist.in_family[0])
    assert np.array_equal(other.get_data().values, hist.other[0])
    assert "latent 0" in specific_ax.get_title() and "latent 1" in other_ax.get_title()
    assert np.array_equal(other_ax.patches[0].get_data().values, hist.in_family[1])
    specific, rest = latents_ax.patches
    assert specific.get_data().values.sum() == 1 and rest.get_data().values.sum() == 1


def test_max_activation_figure_says_when_no_latent_is_family_specific(planted):
    path, fams, members = planted
    fams = fams.assign(family_specific=False)
    hist = activation_histograms(path, fams.family.tolist(), members, bins=10)
    figure = max_activation_figure(fams, hist)
    assert "no family-specific latent" in figure.axes[0].texts[0].get_text()


def probes_table() -> pd.DataFrame:
    rows = []
    for task, metric in (("localization", "accuracy"), ("thermostability", "spearman")):
        for layer in (2, 4, 6):
            for features in ("esm", "sae-k8-w256"):
                value = layer / 10 + (0.05 if features == "esm" else 0) + len(task) / 100
                rows.append((layer, task, features, metric, value, value - 0.1, value + 0.05, 50))
            for control, value in (("majority", 0.25), ("composition", 0.35)):
                rows.append((layer, task, control, metric, value, value - 0.1, value + 0.1, 50))
    columns = ["layer", "task", "features", "metric", "value", "ci_low", "ci_high", "n_test"]
    return pd.DataFrame(rows, columns=columns)


def test_probe_metrics_figure_one_panel_per_task_one_line_per_feature_set():
    table = probes_table().sample(frac=1, random_state=2)
    figure = probe_metrics_figure(table)
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_title()}
    assert set(panels) == {
        "Subcellular localization (n_test = 50)",
        "Thermostability (n_test = 50)",
    }
    for title, ax in panels.items():
        task = "localization" if "localization" in title else "thermostability"
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        lines = {c.get_label(): c.lines[0] for c in bars}
        lines |= {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        assert set(lines) == {"esm", "sae-k8-w256", "majority", "composition"}
        for features in ("esm", "sae-k8-w256"):
            rows = table[(table.task == task) & (table.features == features)].sort_values("layer")
            x = lines[features].get_xdata()
            assert np.allclose(np.round(x), rows.layer) and not np.array_equal(x, rows.layer)
            assert np.allclose(lines[features].get_ydata(), rows.value)
        for control, value in (("majority", 0.25), ("composition", 0.35)):  # control lines drawn
            assert np.allclose(lines[control].get_ydata(), value)
        # every legend entry has drawn data; integer layer ticks only
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert set(legend) == set(lines) and all(len(lines[n].get_ydata()) for n in legend)
        assert ax.get_xticks().tolist() == [2, 4, 6]
        assert ax.get_ylim()[1] == 1.02
    loc = panels["Subcellular localization (n_test = 50)"]
    assert loc.get_ylim() == (0.0, 1.02) and loc.get_ylabel() == "test accuracy"
    assert panels["Thermostability (n_test = 50)"].get_ylabel() == "test Spearman ρ"
    # intervals as error bars: the bar of each point spans ci_low..ci_high
    (errorbar, *_) = [c for c in loc.containers if isinstance(c, ErrorbarContainer)]
    segments = errorbar.lines[2][0].get_segments()
    rows = table[(table.task == "localization") & (table.features == errorbar.get_label())]
    rows = rows.sort_values("layer")
    assert np.allclose([seg[0, 1] for seg in segments], rows.ci_low)
    assert np.allclose([seg[1, 1] for seg in segments], rows.ci_high)


def test_probe_coefficients_figure_one_panel_per_layer_and_class_at_its_own_strength():
    rng = np.random.default_rng(3)
    frames = []
    for layer in (2, 3):
        for output in ("H", "E"):
            frames.append(
                pd.DataFrame(
                    {
                        "task": "secondary_structure",
                        "layer": layer,
                        "output": output,
                        "features": ["esm"] * 100 + ["sae-k8-w256"] * 200,
                        "coefficient": np.concatenate(
                            [rng.normal(0, 1, 100), rng.laplace(0, 0.1, 200)]
                        ),
                    }
                )
            )
    selected = pd.DataFrame(
        {
            "task": "secondary_structure",
            "layer": [2, 2, 3, 3],
            "features": ["esm", "sae-k8-w256"] * 2,
            "selected": [0.001, 0.0, 0.01, 0.0001],
        }
    )
    figure = probe_coefficients_figure(pd.concat(frames), selected)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert len(titles) == 4 and "Secondary structure (3 classes), L3: H" in titles
    ax = next(a for a in figure.axes if a.get_title().endswith("L3: H"))
    assert [p.get_label() for p in ax.patches] == ["esm (0.01)", "sae-k8-w256 (0.0001)"]
    for patch in ax.patches:
        values, edges, _ = patch.get_data()
        assert np.isclose((values * np.diff(edges)).sum(), 1.0)


def steering_summary() -> pd.DataFrame:
    """Two kept latents pooled per (multiplier, bin) (the upper bin pools only 12 positions),
    plus rows the figure must ignore: per-latent rows, all-position rows, a filtered latent and
    a skipped one."""
    rows = []
    for multiplier, unchanged in ((0.5, [0.9, 0.95, 0.8]), (4.0, [0.3, 0.6, 0.5])):
        bins = ((0.0, 0.4), (0.4, 0.8), (0.8, 1.0))
        for (low, high), value, n in zip(bins, unchanged, (30, 25, 12), strict=True):
            rows.append(
                ("average", None, multiplier, low, high, n, 2, value, 0.97 + low / 100, None)
                + (value - 0.1, value + 0.05, None)
            )
            rows.append(("latent", 3, multiplier, low, high, 10, 1, value - 0.1, 0.97, True))
            rows[-1] += (None, None, None)
        rows.append(("average", None, multiplier, None, None, 67, 2, 0.5, 0.97, None))
        rows[-1] += (None, None, None)
        rows.append(("latent", 5, multiplier, None, None, 50, 1, 0.1, 0.97, False))
        rows[-1] += (None, None, None)
    rows.append(("latent", 7, None, None, None, 0, 1, None, None, False, None, None, "no homologs"))
    columns = ["scope", "latent", "multiplier", "bin_low", "bin_high", "n_positions", "n_latents"]
    columns += ["fraction_unchanged", "fraction_baseline_unchanged", "kept", "q25", "q75"]
    return pd.DataFrame(rows, columns=[*columns, "skip_reason"])


def test_steering_figure_draws_the_pooled_rows_baseline_and_counts():
    summary = steering_summary().sample(frac=1, random_state=4)
    summary["n_positions"] = summary.n_positions.astype(float)  # as read with nulls: floats
    figure = steering_figure(summary)
    (ax,) = figure.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"×0.5", "×4", "no clamp"}
    assert np.allclose(lines["×0.5"].get_xdata(), [0.2, 0.6, 0.9])
    # the 12-position bin is not a point
    assert np.allclose(lines["×0.5"].get_ydata(), [0.9, 0.95, np.nan], equal_nan=True)
    assert np.allclose(lines["×4"].get_ydata(), [0.3, 0.6, np.nan], equal_nan=True)
    assert np.allclose(lines["no clamp"].get_ydata(), [0.97, 0.974, np.nan], equal_nan=True)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(np.isfinite(lines[name].get_ydata()).any() for name in legend)
    assert any("< 20 positions" in t.get_text() for t in ax.texts)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0] == "0–0.4\nn=30 (2 lat.)" and ticks[2].startswith("0.8–1\nn=12")
    assert len(ax.collections) == 2  # one interquartile band per multiplier
    footer = figure.get_supxlabel()  # kept / filtered / skipped latents, stated
    assert "1 kept, 1 filtered" in footer and "1 skipped" in footer


def test_steering_figure_says_when_nothing_was_steered():
    empty = steering_summary().iloc[:0]
    (ax,) = steering_figure(empty).axes
    assert "no latent was steered" in ax.texts[0].get_text()


def test_save_figure_writes_png_and_svg(tmp_path):
    figure = sweep_figure(summary_table([(2, 8, 256), (4, 8, 256)]), [(2, 8, 256), (4, 8, 256)])
    save_figure(figure, tmp_path / "f.png", tmp_path / "f.svg")
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]  # no temporaries


def test_save_figure_leaves_nothing_when_drawing_fails(tmp_path):
    figure = sweep_figure(summary_table([(2, 8, 256), (4, 8, 256)]), [(2, 8, 256), (4, 8, 256)])
    with pytest.raises(ValueError):
        save_figure(figure, tmp_path / "f.png", tmp_path / "f.svg", dpi=-1)
    assert list(tmp_path.iterdir()) == []


def test_figure_sweeps_keeps_varying_sweeps_and_explains_the_rest():
    from protsae.figures import figure_sweeps

    sweeps = [
        {"layers": [2, 4], "ks": [8], "widths": [256]},
        {"layers": [2], "ks": [8], "widths": [256]},
        {"layers": [2], "ks": [4, 8], "widths": [256]},
    ]
    kept, skipped = figure_sweeps(sweeps)
    assert kept == {1: [[2, 8, 256], [4, 8, 256]], 3: [[2, 4, 256], [2, 8, 256]]}
    assert skipped == [
        "figures: sweep 2 (layer 2, k 8, width 256) has a single SAE; no sweep figure drawn for it"
    ]


def test_save_figure_svg_is_reproducible(tmp_path):
    table = summary_table([(2, 8, 256), (4, 8, 256)])
    sweep = [(2, 8, 256), (4, 8, 256)]
    for name in ("a", "b"):
        save_figure(sweep_figure(table, sweep), tmp_path / f"{name}.png", tmp_path / f"{name}.svg")
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()


def test_best_concepts_figure_shows_each_latents_best_concept():
    from protsae.figures.concepts import best_concepts_figure

    concepts = pd.DataFrame(
        {
            "latent": [4, 4, 9, 2],
            "concept": ["MOTIF:m1", "HELIX", "TRANSMEM", "BINDING:Zn(2+)"],
            "f1_test": [0.9, 0.95, 0.3, 0.6],
        }
    )
    figure = best_concepts_figure(concepts, title="L2 k8 w256")
    (ax,) = figure.axes
    bars = sorted(ax.patches, key=lambda b: -b.get_y())  # top to bottom
    assert [round(b.get_width(), 2) for b in bars] == [0.95, 0.6, 0.3]  # one per latent
    labels = {t.get_position()[1]: t.get_text() for t in ax.get_yticklabels()}
    labels = [labels[y] for y in sorted(labels, reverse=True)]  # top to bottom
    assert labels == [
        "latent 4: HELIX residues",
        "latent 2: BINDING 'Zn(2+)' residues",
        "latent 9: TRANSMEM residues",
    ]
    empty = best_concepts_figure(concepts.head(0))
    assert "no residue concept" in empty.axes[0].texts[0].get_text()
