# Stand-in for python:3.11-slim-bookworm (test only, deploy/test/deploy_test.sh): Debian's
# python3 (3.11) with venv, `python` on PATH as in the official image.
FROM ats-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
CMD ["python3"]
