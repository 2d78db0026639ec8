# syntax=docker/dockerfile:1
# Image of Triton Inference Server with the critic's vision model repository (deploy/triton/cpu):
# HTTP 8000, gRPC 8001, metrics 8002. The graph `lift critic export` wrote is mounted at
# /models/graph (LIFT_VISION_GRAPH); the critic runs with LIFT_CRITIC_BACKEND=triton.
# Build from the repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t lift-triton:cpu .
# The repository's instances are KIND_CPU (onnxruntime in Triton's Python backend); GPU
# instance groups are a later issue (deploy/triton/README.md). One stage: NVIDIA's image is the
# runtime, only the Python backend's two packages are added, at the versions tested with
# tests/integration/test_triton.py.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:25.10-py3

FROM ${TRITON_IMAGE}
ARG ONNXRUNTIME_VERSION=1.32.0
ARG NUMPY_VERSION=1.26.4
RUN python3 -m pip install --no-cache-dir --break-system-packages \
      "onnxruntime==${ONNXRUNTIME_VERSION}" "numpy==${NUMPY_VERSION}"
COPY --chown=1000:1000 deploy/triton/cpu/ /opt/lift/triton-repository/
RUN mkdir -p /models/graph && chown 1000:1000 /models/graph
ENV LIFT_VISION_GRAPH=/models/graph
VOLUME ["/models"]
# triton-server, the non-root user of NVIDIA's image.
USER 1000:1000
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8000/v2/health/ready"]
ENTRYPOINT ["tritonserver", "--model-repository=/opt/lift/triton-repository"]
