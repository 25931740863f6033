#!/usr/bin/env bash
# The main job (make run): the local stack (Postgres, Temporal with its UI,
# Vault), graphsim with a demo tenant standing in for Microsoft, and
# outlookd serving the API and the worker. Ctrl-C stops outlookd;
# `make stack-down` stops the rest, graphsim with it.
#
# RUN_PROFILE=cluster (make run RUN_PROFILE=cluster) runs the same on the
# cluster profile's stack: the real Temporal server on PostgreSQL with its
# own Web UI, as a platform team runs it; `go run ./deploy/stack --profile
# cluster down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/outlookd
API_ADDR=${OUTLOOKD_HTTP_ADDR:-127.0.0.1:8080}
SIM_ADDR=${OUTLOOKD_SIM_ADDR:-127.0.0.1:8800}

PROFILE=${RUN_PROFILE:-run}
case $PROFILE in
  run|cluster) ;;
  *) echo "RUN_PROFILE must be run or cluster (the test profile belongs to make test), not \"$PROFILE\"" >&2; exit 2 ;;
esac
go run ./deploy/stack --profile "$PROFILE" up
DIR=.stack/$PROFILE
set -a; source "$DIR/env"; set +a

# graphsim, seeded with the demo tenant, stands for Microsoft: it keeps
# running when outlookd stops (Ctrl-C), as Microsoft does, so that a later
# make run finds the same tenant, app registration, tokens and mail, and
# its connections go on. `make stack-down` (or make clean) stops it; the
# next make run then starts a new one, a new world that connections made
# before do not know. Its app sends users back to us. outlookd's receiver
# listens on plain http here, which Microsoft refuses: graphsim accepts it
# only because it is told to (and says so in its log).
info=$DIR/demo.json
pidfile=$DIR/graphsim.pid
bin_abs=$(pwd)/$BIN
sim_running() {
  [ -s "$pidfile" ] && [ -s "$info" ] || return 1
  local pid; pid=$(head -1 "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in "$bin_abs"|"$bin_abs (deleted)") ;; *) return 1 ;; esac
  (exec 3<>"/dev/tcp/${SIM_ADDR%:*}/${SIM_ADDR##*:}") 2>/dev/null
}
if sim_running; then
  echo "graphsim  still running (pid $(head -1 "$pidfile")) at http://$SIM_ADDR: its tenant, app, tokens and mail are kept ('make stack-down' stops it)"
else
  if (exec 3<>"/dev/tcp/${SIM_ADDR%:*}/${SIM_ADDR##*:}") 2>/dev/null; then
    echo "$SIM_ADDR is taken, by something other than this profile's graphsim (the other profile's? 'go run ./deploy/stack --profile run|cluster down' stops that one's); or choose another address with OUTLOOKD_SIM_ADDR" >&2
    exit 1
  fi
  rm -f "$info" "$pidfile"
  setsid "$BIN" sim --seed demo --addr "$SIM_ADDR" --redirect-uri "http://$API_ADDR/v1/oauth/callback,http://$API_ADDR/v1/oauth/admin-callback" --info-file "$info" \
    --insecure-http-notifications \
    >> "$DIR/graphsim.log" 2>&1 < /dev/null &
  sim_pid=$!
  printf '%s\n%s\n' "$sim_pid" "$bin_abs" > "$pidfile"
  for _ in $(seq 1 300); do [ -s "$info" ] && break; kill -0 $sim_pid 2>/dev/null || { cat "$DIR/graphsim.log"; exit 1; }; sleep 0.1; done
  echo "graphsim  started (pid $sim_pid) at http://$SIM_ADDR with the demo tenant; it keeps running after Ctrl-C, as Microsoft would ('make stack-down' stops it)"
fi
field() { sed -n "s/.*\"$1\": \"\([^\"]*\)\".*/\1/p" "$info" | head -1; }
users=$(tr -d '\n ' < "$info" | sed -n 's/.*"users":\["\([^"]*\)".*/\1/p')

export OUTLOOKD_HTTP_ADDR=$API_ADDR
export OUTLOOKD_PUBLIC_URL="http://$API_ADDR"
export OUTLOOKD_CLIENT_ID; OUTLOOKD_CLIENT_ID=$(field clientId)
export OUTLOOKD_AUTHORITY_URL="http://$SIM_ADDR"
export OUTLOOKD_GRAPH_URL="http://$SIM_ADDR/v1.0"
export OUTLOOKD_LOG_FORMAT=${OUTLOOKD_LOG_FORMAT:-text}
# The app under development listens on this machine, over plain http:
# webhook endpoints may be http and on loopback here, never in production.
export OUTLOOKD_WEBHOOKS_ALLOW_INSECURE=${OUTLOOKD_WEBHOOKS_ALLOW_INSECURE:-true}
field clientSecret | "$BIN" appsecret set >/dev/null
key=$("$BIN" apikey create --org demo --admin --name walkthrough 2>/dev/null)

cat <<MSG

  outlookd is starting.
    API          http://$API_ADDR   (GET /readyz, OpenAPI at /v1/openapi.json)
    Temporal UI  $OUTLOOKD_TEMPORAL_UI_URL
    graphsim     http://$SIM_ADDR   (demo tenant contoso.example; log in $DIR/graphsim.log)

  Walkthrough, in another terminal (README.md has the same):
    export KEY=$key   # an admin key of organisation "demo"; more: bin/outlookd apikey create --org demo
    export H="Authorization: Bearer \$KEY"
  1. create a connection for app user "me", and keep its id:
    curl -s -X POST http://$API_ADDR/v1/connections -H "\$H" -H 'Outlookd-User: me' -H 'Content-Type: application/json' -d '{"login_hint":"$users","features":{"read":true,"send":true}}' | tee conn.json
    export ID=\$(jq -r .id conn.json)
  2. open its authorize_url in a browser (jq -r .authorize_url conn.json): graphsim's consent page; press Accept
  3. watch the workflow connection/\$ID in the Temporal UI: $OUTLOOKD_TEMPORAL_UI_URL/namespaces/default/workflows
  4. list messages:  curl -s "http://$API_ADDR/v1/connections/\$ID/messages?limit=5" -H "\$H"
  5. inject mail:    curl -s -X POST http://$SIM_ADDR/_sim/users/$users/messages -d '[{"subject":"Hello from graphsim"}]'
  6. see it arrive:  the call of step 4 again, or the events: curl -s http://$API_ADDR/v1/events -H "\$H"
  7. send a message, once (the same Idempotency-Key again answers the same send):
    curl -s -X POST http://$API_ADDR/v1/connections/\$ID/sends -H "\$H" -H 'Outlookd-User: me' -H 'Idempotency-Key: walkthrough-1' -H 'Content-Type: application/json' -d '{"to":[{"address":"someone@fabrikam.example"}],"subject":"Hello from outlookd","body":{"content_type":"text","content":"Sent once."}}' | tee send.json
  8. the send, "sent" a moment later with message_id, its copy in Sent Items, synced like any message:
    curl -s http://$API_ADDR/v1/connections/\$ID/sends/\$(jq -r .id send.json) -H "\$H" -H 'Outlookd-User: me' | tee sent.json
    curl -s http://$API_ADDR/v1/connections/\$ID/messages/\$(jq -r .message_id sent.json) -H "\$H" -H 'Outlookd-User: me'

MSG
"$BIN" serve
