# Encargo: one image for every process (web, worker, scheduler, migrate; the demo's sandbox core).
# The default command serves the web app; docker-compose.yml picks the others.
#
# Layers go from the least to the most often changed: the dependencies listed in pyproject.toml are
# installed before any code is copied (a code change reuses that layer), then Encargo itself from a
# wheel built in a separate stage: a non-editable install, so the code and its data files (migrations,
# faq_data, texts, templates) run from site-packages and no source tree is in the image.
# tests/test_image.py checks these rules and runs the same install steps in a virtualenv.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The wheel of the checkout (the build context, filtered by .dockerignore).
FROM base AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM base
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin encargo
# Tesseract with its Spanish data reads tracking codes in customers' photos (services/ocr.py); without it OCR is off.
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-spa \
    && rm -rf /var/lib/apt/lists/*

# 1. The dependencies only: this layer is rebuilt when pyproject.toml changes, not when the code does.
COPY pyproject.toml /tmp/deps/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/deps/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/deps/requirements.txt \
    && pip install -r /tmp/deps/requirements.txt \
    && rm -rf /tmp/deps

# 2. Encargo itself, without touching the dependencies.
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels

# The media volume's mount point (docker-compose.yml), owned by encargo so the volume is too (issue 17).
RUN install -d -o encargo -g encargo /home/encargo/media

USER encargo
WORKDIR /home/encargo
ENV WEB_BIND=0.0.0.0:8000
EXPOSE 8000

# The web app's liveness (the worker and the scheduler override it in docker-compose.yml).
# Python's urllib: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('WEB_BIND', ':8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=3)"]

CMD ["encargo-web"]
