# Image for every application service in docker-compose.yml (dispatcher, workers, Beat, Flower).
# The command decides the role; configuration comes from the environment (core/settings.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs: the build does not see .stack/, lake/, tests or local secrets.
COPY pyproject.toml celeryconfig.py ./
COPY core ./core
COPY ops ./ops
COPY dispatcher ./dispatcher
COPY tasks ./tasks
COPY domains ./domains
COPY writers ./writers
RUN pip install .

# Unprivileged user; the volume mount points exist and belong to it, so named volumes inherit that.
RUN useradd --create-home --uid 10001 pipeline \
    && mkdir -p /data/lake /data/cache /data/beat \
    && chown -R pipeline:pipeline /data /app
USER pipeline

ENV LAKE_DIR=/data/lake \
    CACHE_DIR=/data/cache

CMD ["celery", "-A", "tasks", "worker", "--loglevel", "INFO"]
