"""The ground floor: settings, errors, security rules, Redis keys and state, dead letters, names.

Imports nothing else of the project (a test over the import graph keeps it so).
"""
