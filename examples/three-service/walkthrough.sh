#!/usr/bin/env bash
# The README's walk-through of the running demo (start.sh), step by step,
# with a check after each; exits non-zero at the first that fails.
# Needs curl and jq.
set -euo pipefail
: "${COMMAND_PORT:=9000}"
: "${TIME_API_PORT:=9100}"
: "${WEB_APP_PORT:=9200}"
: "${DEMO_USER:=alice}"
: "${DEMO_PASSWORD:=wonderland-demo-password}"
writ=http://127.0.0.1:$COMMAND_PORT
api=http://127.0.0.1:$TIME_API_PORT
web=http://127.0.0.1:$WEB_APP_PORT

step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "walk-through failed: $*" >&2
  exit 1
}
# Prints a request's status code and WWW-Authenticate challenge.
status_and_challenge() {
  curl -s -o /dev/null -D - -w '%{http_code}\n' "$@" |
    tr -d '\r' | awk 'tolower($0) ~ /^www-authenticate:/ {sub(/^[^:]*: */, ""); c=$0} /^[0-9]+$/ {s=$0} END {print s " " c}'
}

step "1. The web app calls the time API as itself (client credentials)"
answer=$(curl -fsS "$web/time")
echo "$answer"
[[ $answer == "/current_time says 20"*"(client-credentials token of the web app)" ]] ||
  fail "the web app did not show the current time"

step "2. The web app calls it for $DEMO_USER (password grant on client 1234)"
answer=$(curl -fsS --data-urlencode "username=$DEMO_USER" --data-urlencode "password=$DEMO_PASSWORD" "$web/epoch")
echo "$answer"
[[ $answer =~ ^/epoch_time\ says\ [0-9]{10}\ \(password-grant\ token\ of\ $DEMO_USER\) ]] ||
  fail "the web app did not show the epoch time"

step "3. A token of your own from Writ: password grant, client 1234, secret qwerty"
response=$(curl -fsS -u 1234:qwerty -d grant_type=password --data-urlencode "username=$DEMO_USER" \
  --data-urlencode "password=$DEMO_PASSWORD" -d scope=epoch:read "$writ/token")
jq '{token_type, expires_in, scope}' <<<"$response"
token=$(jq -r .access_token <<<"$response")
[ "$(jq -r .expires_in <<<"$response")" = 5 ] || fail "client 1234's tokens should live 5 s"

step "4. The time API accepts it for /epoch_time"
curl -fsS -H "Authorization: Bearer $token" "$api/epoch_time" || fail "the token was refused"

step "5. ... and refuses it for /current_time: the token lacks time:read"
read -r code challenge < <(status_and_challenge -H "Authorization: Bearer $token" "$api/current_time")
echo "$code $challenge"
[ "$code" = 403 ] && [[ $challenge == *'error="insufficient_scope"'* ]] ||
  fail "expected 403 insufficient_scope"

step "6. Revoke it at Writ (RFC 7009)"
code=$(curl -s -o /dev/null -w '%{http_code}' -u 1234:qwerty --data-urlencode "token=$token" "$writ/revoke")
echo "$code"
[ "$code" = 200 ] || fail "revocation answered $code"
revoked_at=$(date +%s%N)

step "7. The time API refuses it at once, without asking Writ"
while :; do
  read -r code challenge < <(status_and_challenge -H "Authorization: Bearer $token" "$api/epoch_time")
  [ "$code" = 401 ] && break
  [ $(($(date +%s%N) - revoked_at)) -lt 2000000000 ] || fail "still accepted 2 s after the revocation"
done
echo "$code $challenge (after $((($(date +%s%N) - revoked_at) / 1000000)) ms)"
[[ $challenge == *revoked* ]] || fail "expected the challenge to say the token was revoked"
status=$(curl -fsS "$api/status")
jq . <<<"$status"
[ "$(jq -r .introspection_calls <<<"$status")" = 0 ] || fail "the time API asked Writ about a token"
[ "$(jq -r '.revocations_applied >= 1' <<<"$status")" = true ] || fail "no revocation applied"

echo
echo "walk-through complete"
