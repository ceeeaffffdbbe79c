"""Errors that dagzoo reports to the user as a clear one-paragraph message (no traceback)."""


class DagzooError(Exception):
    """Base class: the CLI prints the message and exits with status 1."""


class ConfigError(DagzooError):
    """The config is invalid: the message names the key path and the allowed values."""


class DataError(DagzooError):
    """Missing, corrupt or unsafe data (checksum mismatch, empty corpus, path traversal...)."""


class CheckpointError(DagzooError):
    """A checkpoint cannot be read or does not belong to this run."""


class TrainingError(DagzooError):
    """Training diverged (NaN/inf loss) or cannot continue."""


class TrackingError(DagzooError):
    """MLflow could not be reached or refused the data."""
