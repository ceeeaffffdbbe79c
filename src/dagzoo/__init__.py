"""dagzoo: a reproducible Snakemake + MLflow pipeline for generative and self-supervised models."""

# Other directories on the Python path may contribute families (dagzoo/<family>/) to this
# namespace; dagzoo.family discovers them (see "Adding a family" in README.md).
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.4.0"
