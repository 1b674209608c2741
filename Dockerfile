# driftloop: the daemon (`driftloop run`) and the BentoML service (`driftloop serve`) from one image.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    BENTOML_DO_NOT_TRACK=True \
    DRIFTLOOP_HOME=/var/lib/driftloop

WORKDIR /opt/driftloop
# The CPU build of torch first, so the project's looser requirement does not pull a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY common common
COPY daemon daemon
COPY ingest ingest
COPY drift drift
COPY trainer trainer
COPY registry registry
RUN pip install .

RUN useradd --system --home-dir /var/lib/driftloop --create-home driftloop
USER driftloop
VOLUME ["/var/lib/driftloop"]
ENTRYPOINT ["driftloop"]
CMD ["run"]
