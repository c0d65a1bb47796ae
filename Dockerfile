# One image for every server: `cardgame serve auth|game|match` (the Kubernetes manifests in
# deploy/k8s choose with `args`). Build: docker build -t cardgame .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 CARDGAME_ENV=production
WORKDIR /app
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p servers fake_client console loadtest \
    && touch servers/__init__.py fake_client/__init__.py console/__init__.py loadtest/__init__.py \
    && pip install . && pip uninstall -y cardgame
# The code runs from /app (installed in place): it reads config/, lua/ and migrations/ next to
# the servers package (servers/common/config.py, lua.py, db.py).
COPY config config
COPY lua lua
COPY migrations migrations
COPY servers servers
COPY fake_client fake_client
COPY console console
COPY loadtest loadtest
RUN pip install --no-deps -e . && python -m compileall -q servers
# A numeric user, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000 8100 8200
ENTRYPOINT ["cardgame"]
CMD ["serve", "game"]
