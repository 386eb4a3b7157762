"""The `pacs-ingest` command: the only code that composes receivers and workers."""
