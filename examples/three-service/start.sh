#!/usr/bin/env bash
# The three-service demo: Writ split into its command API, query API and
# projector on PostgreSQL and Kafka; the time API (a resource server on the
# writ-resource-server crate); and the web app that calls it with Writ's
# tokens. Runs until interrupted; prints "demo ready" when all five are up.
#
# Needs an empty PostgreSQL database and a Kafka broker; see README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

: "${WRIT_DATABASE_URL:=postgres://writ:writ@127.0.0.1:5432/writ_demo}"
: "${WRIT_KAFKA_BROKERS:=127.0.0.1:9092}"
: "${WRIT_KAFKA_TOPIC:=writ.revocations}"
: "${DEMO_DATA:=$root/demo-data}"
: "${COMMAND_PORT:=9000}"
: "${QUERY_PORT:=9001}"
: "${PROJECTOR_PORT:=9002}"
: "${TIME_API_PORT:=9100}"
: "${WEB_APP_PORT:=9200}"
: "${DEMO_USER:=alice}"
: "${DEMO_PASSWORD:=wonderland-demo-password}"
export WRIT_DATABASE_URL WRIT_KAFKA_BROKERS WRIT_KAFKA_TOPIC
export WRIT_KEY_FILE="$DEMO_DATA/keys"
# The issuer is the command API, where tokens are made; the query API is
# announced in discovery for introspection and the JWKS.
issuer="http://127.0.0.1:$COMMAND_PORT"
query_url="http://127.0.0.1:$QUERY_PORT"

if [ -z "${DEMO_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" \
    --bin writ --bin time-api --bin web-app
  DEMO_BIN="$root/target/release"
fi
writ="$DEMO_BIN/writ"
mkdir -p "$DEMO_DATA/logs"

pids=()
stop_all() {
  trap - EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop_all EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Waits until a command succeeds, or gives up after 60 s with the log.
wait_for() {
  local what=$1 log=$2
  shift 2
  for _ in $(seq 1 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$what did not start; its log ($log):" >&2
  tail -n 20 "$log" >&2
  exit 1
}

[ -f "$WRIT_KEY_FILE" ] || "$writ" keys init
"$writ" migrate

# The clients and the user, made once; a second run finds them.
secret_file="$DEMO_DATA/web-app.secret"
if ! "$writ" client show web-app >/dev/null 2>&1; then
  head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$secret_file"
  "$writ" client create --client-id web-app --secret-stdin --name "Demo web app" \
    --grant-type client_credentials --scope "time:read" --audience time-api \
    <"$secret_file" >/dev/null
fi
if ! "$writ" client show 1234 >/dev/null 2>&1; then
  # The weak secret and the 5-second tokens are the tutorial's, for a demo.
  echo qwerty | "$writ" client create --client-id 1234 --secret-stdin --allow-weak-secret \
    --name "First-party app" --grant-type password --access-token-ttl 5s \
    --scope "time:read epoch:read" --audience time-api >/dev/null
fi
if ! "$writ" user show "$DEMO_USER" >/dev/null 2>&1; then
  echo "$DEMO_PASSWORD" | "$writ" user create --username "$DEMO_USER" --password-stdin >/dev/null
fi

start() {
  local name=$1
  shift
  "$@" >"$DEMO_DATA/logs/$name.log" 2>&1 &
  pids+=($!)
}
start command-api "$writ" command-api --listen "127.0.0.1:$COMMAND_PORT" \
  --issuer "$issuer" --public-query-url "$query_url"
start query-api "$writ" query-api --listen "127.0.0.1:$QUERY_PORT" \
  --issuer "$issuer" --public-query-url "$query_url"
start projector "$writ" projector --listen "127.0.0.1:$PROJECTOR_PORT" \
  --issuer "$issuer" --kafka-brokers "$WRIT_KAFKA_BROKERS"
wait_for "writ command-api" "$DEMO_DATA/logs/command-api.log" curl -fsS "$issuer/readyz"
wait_for "writ query-api" "$DEMO_DATA/logs/query-api.log" curl -fsS "$query_url/readyz"
# The command API makes the signing keys on its first start; the query API
# publishes them at its next reload (every 5 s). A token signed before
# that would not verify at the time API.
wait_for "the query API's key set" "$DEMO_DATA/logs/query-api.log" \
  sh -c "curl -fsS '$query_url/jwks' | grep -q kid"
wait_for "writ projector" "$DEMO_DATA/logs/projector.log" \
  curl -fsS "http://127.0.0.1:$PROJECTOR_PORT/readyz"

discovery="$query_url/.well-known/openid-configuration"
WRIT_DISCOVERY_URL=$discovery TIME_API_LISTEN="127.0.0.1:$TIME_API_PORT" \
  start time-api "$DEMO_BIN/time-api"
wait_for "time-api" "$DEMO_DATA/logs/time-api.log" \
  grep -q "time-api listening" "$DEMO_DATA/logs/time-api.log"
WRIT_DISCOVERY_URL=$discovery WEB_APP_LISTEN="127.0.0.1:$WEB_APP_PORT" \
  TIME_API_URL="http://127.0.0.1:$TIME_API_PORT" \
  WEB_APP_CLIENT_SECRET="$(cat "$secret_file")" WEB_APP_USER_CLIENT_SECRET=qwerty \
  start web-app "$DEMO_BIN/web-app"
wait_for "web-app" "$DEMO_DATA/logs/web-app.log" \
  grep -q "web-app listening" "$DEMO_DATA/logs/web-app.log"

cat <<READY
demo ready
  web app      http://127.0.0.1:$WEB_APP_PORT
  Writ         $issuer (command API), $query_url (query API)
  time API     http://127.0.0.1:$TIME_API_PORT
  logs         $DEMO_DATA/logs
READY

# Runs until interrupted, or until one of the five exits.
set +e
wait -n "${pids[@]}"
echo "a demo process exited; see $DEMO_DATA/logs" >&2
exit 1
