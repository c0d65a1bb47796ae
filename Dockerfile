# One image for every server: `cardgame serve auth|game|match` (the Kubernetes manifests in
# deploy/k8s choose with `args`). Build: docker build -t cardgame .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 CARDGAME_ENV=production
WORKDIR /app
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p servers && touch servers/__init__.py && pip install . && pip uninstall -y cardgame
# The code runs from /app (installed in place): it reads config/, content/, lua/ and migrations/
# next to the servers package (servers/common/config.py, content.py, lua.py, db.py). Only what production runs is
# copied: the development tools (devtools/: local stacks, chaos, benchmarks, the Steam
# simulator), the fake client, the console and the load tests stay out, and `cardgame` offers
# serve, migrate, content, schema and openapi.
COPY config config
COPY content content
COPY lua lua
COPY migrations migrations
COPY servers servers
RUN pip install --no-deps -e . && python -m compileall -q servers
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000 8100 8200
ENTRYPOINT ["cardgame"]
CMD ["serve", "game"]
