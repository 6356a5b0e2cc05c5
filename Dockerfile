# Encargo: one image for every process (web, worker, scheduler, sandbox-core, migrate).
# The default command serves the web app; docker-compose.yml picks the others.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin encargo

WORKDIR /app
COPY . /app
# Editable install: the code stays in /app, where it finds migrations/, faq_data/ and the
# sandbox core's data at run time; the console scripts (encargo-worker, ...) go on the PATH.
RUN pip install -e . && chmod -R a+rX /app

USER encargo
EXPOSE 8000

CMD ["gunicorn", "web.app:app", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "2", "--threads", "8", "--timeout", "30", "--graceful-timeout", "10"]
