#!/bin/sh
# Stand-in for the official redis image's entrypoint (test only).
set -eu
# `docker run redis --appendonly yes` means redis-server with those flags.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
	shift
	[ "$(id -u)" = 0 ] && chown -R redis:redis /data
	# The official build turns protected mode off: the network is the container's own.
	exec setpriv --reuid=redis --regid=redis --init-groups redis-server --protected-mode no "$@"
fi
exec "$@"
