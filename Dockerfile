# Production image, four stages:
#   pydeps   - Python 3.11 + the pinned requirements in /opt/venv
#   frontend - pydeps + Node + bun (build time only): `reflex export --frontend-only` -> static files
#   proxy    - Caddy serving those static files and proxying to the backend (docker-compose.yml)
#   runtime  - the final, default stage: Python only (no Node, no bun); runs the backend, the RQ
#              worker, the monitor and the migration, chosen by the command (see docker-compose.yml)
#
#   docker build -t ats:latest .                      # runtime (the default, last stage)
#   docker build --target proxy -t ats-proxy:latest . # proxy + dashboard
#
# The dashboard is domain-independent: with the default API_URL (localhost) the exported frontend
# reaches the backend on the page's own origin (https://your-domain/_event), so one image serves
# any domain. Set --build-arg API_URL=https://other-host only when the backend lives elsewhere.
#
# No `# syntax=` line: BuildKit's built-in Dockerfile frontend builds this file, so a build
# needs no image from Docker Hub beyond the base images (which --build-arg can point at a
# mirror: PYTHON_IMAGE, NODE_IMAGE, CADDY_IMAGE).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim
ARG CADDY_IMAGE=caddy:2.8.4-alpine

FROM ${NODE_IMAGE} AS node

FROM ${PYTHON_IMAGE} AS pydeps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# requirements.txt pins the development tools too; nothing in the images runs them (playwright
# alone is 165 MB and carries a Node binary, which the runtime image must not).
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && /opt/venv/bin/pip uninstall -y -q playwright pytest pytest-timeout hypothesis ruff aiosmtpd

FROM pydeps AS frontend
# Node from the official image (same Debian release), bun from the npm registry: Reflex's own
# bun installer downloads from the internet, the npm registry is what we use everywhere.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
ARG BUN_VERSION=1.4.4
RUN npm install -g --prefix /opt/bun bun@${BUN_VERSION} && /opt/bun/bin/bun --version
ENV PATH=/opt/venv/bin:/opt/bun/bin:${PATH} \
    REFLEX_TELEMETRY_ENABLED=false \
    REFLEX_CHECK_LATEST_VERSION=false
WORKDIR /app
COPY . .
ARG API_URL=http://localhost:8000
# Writes .web/build/client (static site, pre-compressed .gz) and .web/backend (page metadata
# the production backend reads); no zip, the next stages copy the directories.
# Reflex 0.10 reads only REFLEX_-prefixed names: API_URL alone was ignored.
RUN REFLEX_API_URL=${API_URL} reflex export --frontend-only --no-zip --env prod \
 && test -f .web/build/client/index.html \
 && test -f .web/build/client/404.html \
 && test -d .web/backend

FROM ${CADDY_IMAGE} AS proxy
COPY deploy/Caddyfile /etc/caddy/Caddyfile
COPY --from=frontend /app/.web/build/client /srv/dashboard

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ATS_ENV=prod \
    ATS_DATA_DIR=/var/lib/ats \
    REFLEX_TELEMETRY_ENABLED=false \
    REFLEX_CHECK_LATEST_VERSION=false \
    REFLEX_UPLOADED_FILES_DIR=/var/lib/ats/uploaded_files
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin ats
COPY --from=pydeps /opt/venv /opt/venv
WORKDIR /app
COPY . .
COPY --from=frontend /app/.web/backend /app/.web/backend
# Code stays root-owned; the service user may write only runtime directories: the data dir
# (Reflex's upload dir too: the backend creates it at start, and failed in the read-only /app),
# Reflex's .web/.states, and logs/ (the SmartAPI SDK writes logs/<date>/app.log under the cwd).
RUN mkdir -p /var/lib/ats /app/.states /app/logs \
 && chown -R ats:ats /var/lib/ats /app/.web /app/.states /app/logs
USER ats
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "deploy/healthcheck.py", "backend"]
# The backend (Starlette + Reflex event socket). worker / monitor / migrate override the command:
#   python -m ats_app.cli worker | python -m ats_app.cli monitor | python -m ats_app.cli db upgrade
CMD ["reflex", "run", "--env", "prod", "--backend-only", "--backend-host", "0.0.0.0", "--backend-port", "8000"]
