# PgBouncer 1.21 or later: sqlx prepares named statements, which a pooler in transaction mode
# must follow across server connections (`max_prepared_statements`). Debian 13 ships 1.24.
FROM debian:trixie-slim
RUN apt-get update && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/*
COPY deploy/pgbouncer.ini /etc/pgbouncer/pgbouncer.ini
USER postgres
CMD ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
