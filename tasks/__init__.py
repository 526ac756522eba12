"""Celery app and stage tasks. ``celery -A tasks worker -Q xact.download`` works from here.

Importing the package registers every stage task for every registered domain
(``domains.registry``): the stage modules below hold only domain-neutral machinery.
"""

from tasks import batcher, download, enrich, upload, write  # noqa: F401 - registers the tasks
from tasks.application import app

app.loader.import_default_modules()

__all__ = ["app"]
