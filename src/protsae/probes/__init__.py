"""Linear probes on ESM-2 embeddings and SAE latents (method.md, "Linear probes").

``formats`` reads the four tasks' published files, ``data`` holds the records and splits,
``features`` turns records into ESM or SAE feature matrices, ``fit`` trains and scores the
probes, ``interpret`` names the latents behind each prediction.
"""
