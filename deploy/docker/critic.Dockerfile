# syntax=docker/dockerfile:1
# Image of the critic (`lift critic serve`): gRPC 50051, HTTP 8080. Checkpoints (LIFT_CRITIC_MODEL,
# LIFT_CRITIC_ADAPTER, LIFT_CRITIC_VISION_GRAPH) are mounted under /models.
# Build from the repository root (deploy/README.md has every image):
#   docker build -f deploy/docker/critic.Dockerfile -t lift-critic:cpu .
#   docker build -f deploy/docker/critic.Dockerfile --build-arg VARIANT=cuda -t lift-critic:cuda .
# VARIANT=cpu installs torch's CPU build (requirements/lock.txt), cuda its CUDA build with the
# CUDA libraries as wheels (requirements/lock-cuda.txt; run with the NVIDIA container toolkit).
# No secret is baked in: tokens (LIFT_AUTH_FILE) and TLS files are mounted at run time.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
# Where pip finds torch==2.13.0+cpu (PyPI has only the CUDA build); used when VARIANT=cpu.
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY deploy/docker/install.sh deploy/docker/install.sh
COPY lift/ lift/
COPY services/ services/
# The same script tests/deploy/test_images.py runs: the lock's pins, then `pip check`.
RUN if [ "$VARIANT" = cpu ]; then export PIP_EXTRA_INDEX_URL="$TORCH_CPU_INDEX"; fi \
 && sh deploy/docker/install.sh /opt/lift critic "$VARIANT" /src

FROM ${PYTHON_IMAGE}
ARG VARIANT=cpu
LABEL org.opencontainers.image.title="lift-critic" \
      org.opencontainers.image.description="LiFT suite: critic service ($VARIANT)" \
      org.opencontainers.image.source="deploy/docker/critic.Dockerfile"
RUN useradd --system --no-log-init --uid 10001 --user-group --home-dir /home/lift --create-home \
      --shell /usr/sbin/nologin lift \
 && mkdir -p /models /data \
 && chown lift:lift /models /data
COPY --from=build /opt/lift /opt/lift
COPY deploy/docker/healthcheck.py /opt/lift/healthcheck.py
ENV PATH=/opt/lift/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HF_HUB_OFFLINE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LIFT_CRITIC_HOST=0.0.0.0 \
    XDG_CACHE_HOME=/data/cache \
    HF_HOME=/data/cache/huggingface
VOLUME ["/models", "/data"]
USER 10001:10001
WORKDIR /home/lift
EXPOSE 50051 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "/opt/lift/healthcheck.py", "critic"]
ENTRYPOINT ["lift", "critic", "serve"]
