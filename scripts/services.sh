#!/usr/bin/env bash
# Start the local services the tests use when they are not already running (CI machines start them before
# the run; a developer machine may not). Each start is a no-op when the service answers.
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
up 5432 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start 2>/dev/null || true
up 6379 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log 2>/dev/null || true
up 4222 || start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 \
  -js -sd /var/lib/nats-server -l /var/log/nats-server.log 2>/dev/null || true
exit 0
