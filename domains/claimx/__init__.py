"""The claimx domain core (no Celery, no Kafka).

* :mod:`.models` — event model, parsing, the ``claimx_events`` row.
* :mod:`.api` / :mod:`.api_errors` / :mod:`.ports` — the ClaimX REST client, its error
  classification, and the port handlers depend on.
* :mod:`.breaker`, :mod:`.ratelimit`, :mod:`.project_cache` — state shared by all workers via Redis.
* :mod:`.handlers` (with :mod:`.project_rows`, :mod:`.entity_rows`, :mod:`.coerce`) — the 12 event
  handlers as pure functions producing entity rows.
* :mod:`.media` — blob paths, download plans, URL refresh.
"""
