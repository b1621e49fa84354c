"""The package version (kept in step with pyproject.toml), importable from any layer."""

__version__ = "0.1.0"
