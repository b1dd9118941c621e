# One image for every role: API, worker and the one-shot migration.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/app

COPY pyproject.toml README.md ./
COPY app ./app
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install --upgrade pip && pip install . && useradd --system --uid 10001 svc && mkdir -p data && chown svc data

USER svc
EXPOSE 8000
# The server limits of app/server.py (what `zoom-hubspot serve` uses): header-read timeout and head
# bounds in the protocol class, the rest as flags with the same values as its defaults.
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", \
     "--http", "app.server:GuardedHttpToolsProtocol", "--timeout-keep-alive", "5", "--limit-concurrency", "500", "--backlog", "1024", "--timeout-graceful-shutdown", "10"]
