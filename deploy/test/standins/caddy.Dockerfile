# Stand-in for caddy:2.8.4-alpine (test only): Debian's caddy, the official image's paths,
# environment and command, and wget for the compose health check (busybox's in the official).
FROM ats-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends caddy wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /config/caddy /data/caddy /etc/caddy /srv
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
