"""expyrun: run a Python experiment from a YAML config; keep what is needed to run it again."""

__version__ = "0.3.0.dev0"
