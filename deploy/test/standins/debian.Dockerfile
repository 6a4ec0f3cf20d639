# The stand-ins' base: Debian bookworm minbase (debootstrap, imported as
# ats-standin/debian:bookworm-raw) trusting the host's CA bundle: this network intercepts TLS.
# The bundle gets a path of its own, which no package's update-ca-certificates rewrites.
FROM ats-standin/debian:bookworm-raw
COPY ca-certificates.crt /etc/ssl/host-ca-bundle.crt
ENV PIP_CERT=/etc/ssl/host-ca-bundle.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/host-ca-bundle.crt \
    SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca-bundle.crt \
    DEBIAN_FRONTEND=noninteractive
