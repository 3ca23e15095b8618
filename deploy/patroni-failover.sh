#!/usr/bin/env bash
# The Patroni failover, run before the deployment issue is resolved (minutes, so not in .ci/run): starts
# compose-patroni.yaml on images built here (build-images.sh --debug, the crowsnest-patroni image), ships from an
# agent on this host at one sample a second through the agents' HAProxy, SIGKILLs the node Patroni made primary,
# and measures how long until the other node is primary and the API answers again; then checks that every
# one-second tick from the start to the end was stored exactly once, and that the old primary rejoined as a
# replica. Prints one summary line per figure. Needs what the suite needs (scripts/ensure-*.sh) and the debug build.
#   deploy/patroni-failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "patroni-failover: $*" >&2; exit 1; }
say() { echo "patroni-failover: $*"; }
repo=$(pwd)
work=$(mktemp -d /tmp/cn-patroni-XXXXXX)
chmod 755 "$work"
project="cnha$$"
# Images under a tag of this run only: debug builds must never replace the release images tagged latest.
tag="failover-$$"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_port=$(port); http_port=$(port)
compose() { (cd "$work/deploy" && docker-compose -f compose-patroni.yaml -p "$project" "$@"); }
agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill -9 "$agent_pid" 2>/dev/null
  compose down -v -t 5 >/dev/null 2>&1 || true
  docker rmi "crowsnest-server:$tag" "crowsnest-agent:$tag" "crowsnest-postgres:$tag" "crowsnest-haproxy:$tag" \
    "crowsnest-patroni:$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

deploy/build-images.sh --debug "$tag" >/dev/null || die "deploy/build-images.sh --debug failed"
docker build -q --build-arg "POSTGRES_IMAGE=crowsnest-postgres:$tag" -t "crowsnest-patroni:$tag" deploy/patroni >/dev/null 2>&1 \
  || die "docker build deploy/patroni failed (it builds on crowsnest-postgres)"
mkdir -p "$work/deploy/patroni"
cp deploy/compose-patroni.yaml deploy/haproxy.cfg "$work/deploy/"
cp deploy/patroni/haproxy-primary.cfg "$work/deploy/patroni/"
cat >"$work/deploy/.env" <<ENV
CROWSNEST_DB_PASSWORD=$(openssl rand -hex 12)
PATRONI_SUPERUSER_PASSWORD=$(openssl rand -hex 12)
PATRONI_REPLICATION_PASSWORD=$(openssl rand -hex 12)
CROWSNEST_SERVER_NAMES=localhost,127.0.0.1
CROWSNEST_AGENT_PUBLISH=127.0.0.1:$agent_port
CROWSNEST_HTTP_PUBLISH=127.0.0.1:$http_port
CROWSNEST_AGENT_ADDRESS=127.0.0.1:$agent_port
CROWSNEST_TAG=$tag
ENV
(umask 077; openssl rand -hex 32 >"$work/deploy/secret.key"); chown 10001:10001 "$work/deploy/secret.key"
compose up -d >/dev/null 2>&1 || die "docker-compose up failed: $(compose up -d 2>&1 | tail -3)"
ready() { curl -fsS -m 3 "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; }
for _ in $(seq 1 180); do ready && break; sleep 1; done
ready || die "the API never answered through HAProxy; logs: $(compose logs --tail 20 2>&1 | tail -40)"
say "stack up: etcd, Patroni pg1 and pg2, the database balancer, two server replicas, the agents' HAProxy"

admin() { compose exec -T replica-1 crowsnest-server "$@"; }
admin tenant create ha >/dev/null
token=$(admin token create --tenant ha --json)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$token" "$1"; }
CROWSNEST_ENROLLMENT_TOKEN=$(field token) .build/debug/crowsnest-agent enroll --server "127.0.0.1:$agent_port" \
  --ca-pin "$(field ca_pin)" --state-dir "$work/agent" >/dev/null || die "enrollment through HAProxy failed"
.build/debug/crowsnest-agent run --state-dir "$work/agent" --interval 1 >"$work/agent.log" 2>&1 &
agent_pid=$!
started=$(( $(date +%s) + 3 ))
sleep 15

primary_of() {  # prints the node whose Patroni REST API answers /primary with 200
  for node in pg1 pg2; do
    code=$(compose exec -T replica-1 curl -s -o /dev/null -w '%{http_code}' "http://$node:8008/primary" 2>/dev/null || true)
    if [ "$code" = 200 ]; then echo "$node"; return 0; fi
  done
  return 0
}
# Both nodes up before the kill: the replica has copied the primary and streams from it.
streaming=""
for _ in $(seq 1 180); do
  # Patroni 3.0 (Debian 12) calls a replica that copied the primary and replays its WAL "running".
  if compose exec -T replica-1 curl -fsS http://pg1:8008/cluster 2>/dev/null \
       | grep -qE '"role": "replica", "state": "(running|streaming)"'; then
    streaming=1; break
  fi
  sleep 1
done
[ -n "$streaming" ] || die "no Patroni replica streaming after 3 minutes: $(compose exec -T replica-1 curl -s http://pg1:8008/cluster)"
old=$(primary_of); [ -n "$old" ] || die "Patroni elected no primary"
other=$([ "$old" = pg1 ] && echo pg2 || echo pg1)
say "primary before: $old; killing it (SIGKILL)"
killed=$(date +%s.%N)
compose kill -s SIGKILL "$old" >/dev/null 2>&1 || die "docker-compose kill $old failed"
new=""
for _ in $(seq 1 120); do new=$(primary_of); [ "$new" = "$other" ] && break; sleep 0.5; done
[ "$new" = "$other" ] || die "$other was not promoted within 60 s"
promoted=$(date +%s.%N)
say "$other promoted $(python3 -c "print(round($promoted - $killed, 1))") s after the kill (Patroni ttl 20 s, loop_wait 5 s)"
stored=""
for _ in $(seq 1 240); do
  n=$(compose exec -T "$other" psql -X -At -h /var/run/postgresql -U postgres -d crowsnest \
      -c "SELECT count(*) FROM host_samples WHERE ts > to_timestamp($promoted)" 2>/dev/null | tr -d '\r' || true)
  [ "${n:-0}" -ge 2 ] 2>/dev/null && { stored=$(date +%s.%N); break; }; sleep 0.5
done
[ -n "$stored" ] || die "no sample stored on the new primary within 2 minutes; logs: $(compose logs --tail 10 replica-1 replica-2 2>&1 | tail -20)"
say "samples stored again $(python3 -c "print(round($stored - $killed, 1))") s after the kill"
compose start "$old" >/dev/null 2>&1
sleep 25
ended=$(( $(date +%s) - 3 ))
sleep 10
count() { compose exec -T "$other" psql -X -At -h /var/run/postgresql -U postgres -d crowsnest -c "$1" | tr -d '\r'; }
ticks=$(count "SELECT count(DISTINCT date_trunc('second', ts)) FROM host_samples WHERE ts >= to_timestamp($started) AND ts < to_timestamp($ended)")
doubled=$(count "SELECT count(*) - count(DISTINCT ts) FROM host_samples")
say "ticks from start to end: $ticks of $(( ended - started )) stored; stored twice: $doubled"
members=$(compose exec -T "$other" patronictl -c /etc/patroni.yml list 2>/dev/null | grep -cE "Replica|Leader" || true)
role=$(compose exec -T "$other" patronictl -c /etc/patroni.yml list 2>/dev/null | grep -E "\| $old " | tr -s ' ' || true)
say "old primary after restart: $role"
status=0
[ "$ticks" -eq $(( ended - started )) ] || { say "FAILED: ticks missing"; status=1; }
[ "$doubled" -eq 0 ] || { say "FAILED: samples stored twice"; status=1; }
[ "$members" -eq 2 ] || { say "FAILED: $members Patroni members running, expected 2"; status=1; }
[ $status -eq 0 ] && say "ok"
exit $status
