# Stand-in for postgres:16-bookworm (test only): Debian bookworm's PostgreSQL 15 with an
# entrypoint honouring the official image's POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB /
# PGDATA. The official image's client tools are first on PATH (pg_dump, pg_restore, psql).
FROM ats-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
