"""dagzoo: a reproducible Snakemake + MLflow pipeline for generative and self-supervised models."""

__version__ = "0.1.0"
