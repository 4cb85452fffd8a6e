# The REST API and web page of maskdetect in a container: `maskdetect serve` on port 8000.
#
#   docker build -t maskdetect .
#   docker run --rm -p 8000:8000 maskdetect                               # one worker process
#   docker run --rm -p 8000:8000 -e MASKDETECT_WORKERS=2 maskdetect       # two, each with its own model
#   docker run --rm -p 8000:8000 maskdetect --workers 2 --detector blazeface-fast   # options of `serve`
#
# The install is scripts/install.sh, the one CI runs: the exact pins of requirements.lock into
# /app/.venv. torch comes from PyPI with its CUDA libraries (the model runs on the CPU here), so the
# image is large: about 7 GB, nearly all of it the virtual environment.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A user of its own: the server never runs as root. It owns /app, so that the install, and the ONNX
# export of the bundled model written beside it at build time, need no root either.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin maskdetect \
    && mkdir /app \
    && chown maskdetect:maskdetect /app
WORKDIR /app
USER maskdetect
# Only what the install and the server read (README.md: pyproject.toml names it), so that editing
# tests, benchmarks or other scripts does not redo the 5 GB install.
COPY --chown=maskdetect:maskdetect pyproject.toml README.md requirements.lock requirements-nodeps.txt requirements-docs.txt ./
COPY --chown=maskdetect:maskdetect scripts/install.sh scripts/
COPY --chown=maskdetect:maskdetect src src
RUN bash scripts/install.sh \
    && .venv/bin/python -c "from maskdetect import Predictor; Predictor()"

ENV PATH=/app/.venv/bin:$PATH \
    MASKDETECT_PORT=8000 \
    MASKDETECT_WORKERS=1
EXPOSE 8000
# python, not curl: the slim image has no curl. It fails (exit 1) unless /healthz answers 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MASKDETECT_PORT', '8000') + '/healthz', timeout=4)"
# Exec form: the server is process 1 and gets docker stop's SIGTERM itself (a clean shutdown).
ENTRYPOINT ["maskdetect", "serve", "--host", "0.0.0.0"]
