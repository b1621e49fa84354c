# Aggregate tables over every SAE of the grid (the figure rules read these).


include: "inputs/report.smk"


rule sae_metrics_table:
    input:
        all_sae_evals,
    output:
        report(
            res("tables", "sae_metrics.csv"),
            caption="../report/sae_metrics.rst",
            category="Tables",
        ),
    log:
        res("logs", "tables", "sae_metrics.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        saes=sae_coordinates(),
    script:
        "../scripts/sae_metrics_table.py"


rule latent_summary_table:
    input:
        all_latent_summaries,
    output:
        report(
            res("tables", "latent_summary.csv"),
            caption="../report/latent_summary.rst",
            category="Tables",
        ),
    log:
        res("logs", "tables", "latent_summary.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        saes=sae_coordinates(),
    script:
        "../scripts/latent_summary_table.py"


# Figures of the paper, each drawn from the tables above or from one SAE's latent tables.


rule figure_sweep:
    input:
        res("tables", "latent_summary.csv"),
    output:
        png=report(
            res("figures", "sweep-{sweep}.png"),
            caption="../report/figure_sweep.rst",
            category="Latents",
            subcategory="Sweeps",
        ),
        svg=res("figures", "sweep-{sweep}.svg"),
    log:
        res("logs", "figures", "sweep-{sweep}.log"),
    wildcard_constraints:
        sweep=r"\d+",
    conda:
        "../../envs/protsae.yaml"
    params:
        points=sweep_points_of_figure,
    script:
        "../scripts/figure_sweep.py"


rule figure_sae_quality:
    input:
        res("tables", "sae_metrics.csv"),
    output:
        png=report(
            res("figures", "sae_quality.png"),
            caption="../report/figure_sae_quality.rst",
            category="SAEs",
        ),
        svg=res("figures", "sae_quality.svg"),
    log:
        res("logs", "figures", "sae_quality.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/figure_sae_quality.py"


rule figure_max_activation:
    input:
        seq_stats=latents_file("seq_stats.parquet"),
        families=latents_file("families.parquet"),
        swissprot=res("sequences", "swissprot.parquet"),
    output:
        png=report(
            res("figures", "max_activation-L{layer}-k{k}-w{width}.png"),
            caption="../report/figure_max_activation.rst",
            category="Latents",
            subcategory="Max activation",
        ),
        svg=res("figures", "max_activation-L{layer}-k{k}-w{width}.svg"),
    log:
        res("logs", "figures", "max_activation-L{layer}-k{k}-w{width}.log"),
    benchmark:
        res("benchmarks", "figures", "max_activation-L{layer}-k{k}-w{width}.tsv")
    conda:
        "../../envs/protsae.yaml"
    params:
        title=sae_title,
    script:
        "../scripts/figure_max_activation.py"


rule figure_best_concepts:
    input:
        concepts=latents_file("concepts.parquet"),
    output:
        png=report(
            res("figures", "best_concepts-L{layer}-k{k}-w{width}.png"),
            caption="../report/figure_best_concepts.rst",
            category="Latents",
            subcategory="Residue concepts",
        ),
        svg=res("figures", "best_concepts-L{layer}-k{k}-w{width}.svg"),
    log:
        res("logs", "figures", "best_concepts-L{layer}-k{k}-w{width}.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        title=sae_title,
    script:
        "../scripts/figure_best_concepts.py"


rule figure_probes:
    input:
        res("tables", "probes.csv"),
    output:
        png=report(
            res("figures", "probes.png"),
            caption="../report/figure_probes.rst",
            category="Probes",
        ),
        svg=res("figures", "probes.svg"),
    log:
        res("logs", "figures", "probes.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/figure_probes.py"


rule figure_probe_coefficients:
    input:
        coefficients=all_probe_tables("coefficients"),
        table=res("tables", "probes.csv"),
    output:
        png=report(
            res("figures", "probe_coefficients.png"),
            caption="../report/figure_probe_coefficients.rst",
            category="Probes",
        ),
        svg=res("figures", "probe_coefficients.svg"),
    log:
        res("logs", "figures", "probe_coefficients.log"),
    conda:
        "../../envs/protsae.yaml"
    script:
        "../scripts/figure_probe_coefficients.py"


rule figure_steering:
    input:
        steering_summary_file,
    output:
        png=report(
            res("figures", "steering-L{layer}-k{k}-w{width}.png"),
            caption="../report/figure_steering.rst",
            category="Steering",
        ),
        svg=res("figures", "steering-L{layer}-k{k}-w{width}.svg"),
    log:
        res("logs", "figures", "steering-L{layer}-k{k}-w{width}.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        title=sae_title,
    script:
        "../scripts/figure_steering.py"
