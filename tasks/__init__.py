"""Celery app and stage tasks. ``celery -A tasks worker -Q xact.download`` works from here."""

from tasks.application import TASK_MODULES, app

app.loader.import_default_modules()
for _module in TASK_MODULES:
    __import__(_module)

__all__ = ["app"]
