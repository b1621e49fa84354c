"""Linear probes on ESM-2 embeddings and SAE latents (method.md, "Linear probes").

``formats`` reads the four tasks' published files, ``tasks`` holds the records, splits and the
task table, ``data`` makes one task's table (rule ``probe_data``), ``features`` turns records
into ESM or SAE feature matrices, ``linear`` trains and scores the linear models, ``fit`` runs
one probe job (rule ``probe_fit``), ``control`` one control (rule ``probe_control``),
``bootstrap`` resamples test proteins, ``table`` gathers ``tables/probes.csv`` (rule
``probes_table``), ``interpret`` names the latents behind each prediction (rule
``probe_interpret``) and ``config`` reads the probe settings.
"""
