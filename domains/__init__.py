"""Pure domain logic. No Celery, no Kafka in here."""
