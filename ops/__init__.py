"""Operator commands: the `pipeline` CLI, the local run, status and reports (the top floor)."""
