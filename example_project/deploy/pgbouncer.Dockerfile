# Debian's pgbouncer (the one the test-suite runs), with the config of this folder.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends pgbouncer \
    && rm -rf /var/lib/apt/lists/*
COPY example_project/deploy/pgbouncer.ini /etc/pgbouncer/pgbouncer.ini
COPY example_project/deploy/userlist.txt /etc/pgbouncer/userlist.txt
USER postgres
EXPOSE 6432
CMD ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
