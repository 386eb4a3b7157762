"""Receiver processes: accept associations, spool each object durably, enqueue, answer."""
