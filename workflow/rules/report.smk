# Aggregate tables over every SAE of the grid (the figure rules read these).


rule sae_metrics_table:
    input:
        all_sae_evals,
    output:
        report(res("tables", "sae_metrics.csv"), caption="../report/sae_metrics.rst"),
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
            res("tables", "latent_summary.csv"), caption="../report/latent_summary.rst"
        ),
    log:
        res("logs", "tables", "latent_summary.log"),
    conda:
        "../../envs/protsae.yaml"
    params:
        saes=sae_coordinates(),
    script:
        "../scripts/latent_summary_table.py"
