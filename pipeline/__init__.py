"""Shared core of the claims pipeline: settings, error taxonomy, security rules, CLI, simulator."""
