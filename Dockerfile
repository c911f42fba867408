# The CoE gateway: FastAPI app, router (sentence embedding + classifier) and metrics. No engine inside.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /opt/coe

# The router's embedder needs torch; PyPI's default build carries CUDA (several GB), the CPU build is enough.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

# Dependencies first, so code edits do not reinstall them.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY router_model ./router_model
COPY composition ./composition
# The product only: the engines run in their own containers; the local stack (packages/local) and the test
# doubles (packages/testing) are never copied in.
RUN pip install . && useradd --system --uid 10001 --home-dir /opt/coe coe

COPY deploy/compose/experts.yaml /etc/coe/experts.yaml

USER coe
EXPOSE 8080
ENTRYPOINT ["coe"]
CMD ["serve", "--experts", "/etc/coe/experts.yaml", "--host", "0.0.0.0", "--port", "8080"]
