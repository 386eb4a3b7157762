"""What the receiver and the workers both need: settings, spool, job schema, queue, pattern."""

__version__ = "0.1.0"
