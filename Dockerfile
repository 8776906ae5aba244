# An nntransfer worker: `docker compose up --scale worker=N` starts N of these against one database.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY setup.py pyproject.toml README.md LICENSE ./
COPY nntransfer ./nntransfer
# CPU wheels keep the image small; use a CUDA base image and the default index for GPU workers.
RUN pip install --no-cache-dir torch torchvision --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir ".[demo,datajoint]"

# Workers run as a user without root rights; the shared store is theirs (a new volume takes this ownership).
RUN useradd --create-home --uid 1000 --user-group nntransfer \
    && mkdir -p /store /recipes && chown nntransfer:nntransfer /store

# Recipes are mounted at /recipes; checkpoints and weights go to the shared store.
ENV RECIPE=/app/nntransfer/recipes/digits_transfer \
    SCHEMA=nntransfer \
    NNTRANSFER_STORE=/store \
    PYTHONUNBUFFERED=1
VOLUME ["/store", "/recipes"]
USER nntransfer
WORKDIR /home/nntransfer

CMD ["sh", "-c", "exec nntransfer worker \"$RECIPE\" --schema \"$SCHEMA\" --order random"]
