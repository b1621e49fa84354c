"""``protsae encode``: your own proteins through a trained SAE.

:mod:`.types` holds the shared types, :mod:`.inputs` checks the SAE folder, checkpoint and FASTA
before any compute, :mod:`.run` encodes and writes the tables (:func:`~.run.encode`), and
:mod:`.pages` writes the optional static pages.
"""
