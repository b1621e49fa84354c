"""Steering family-specific latents, checked against the conservation of their families
(homologs by BLAST, alignments by Clustal Omega); docs/method.md, "Steering"."""
