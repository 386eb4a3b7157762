"""Worker processes: read each spooled object's header, render its path, file it atomically."""
