"""What the receiver and the workers both need: settings, spool, job schema, queue, pattern."""

from importlib import metadata

# pyproject.toml holds the version; the installed distribution's metadata carries it here.
__version__ = metadata.version("pacs-ingest")
