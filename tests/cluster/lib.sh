# shellcheck shell=bash
# shellcheck disable=SC2154 # state: set by the sourcing script
# What tests/cluster/up, down and node.sh share: starting a component
# detached with its pid recorded in $state/NAME.pid, waiting for it, and
# stopping exactly it. Expects $state and say from the caller.

# True when NAME's recorded pid is alive.
pid_alive() { # name
    local pid
    [ -f "$state/$1.pid" ] || return 1
    pid="$(cat "$state/$1.pid")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# True when pid is alive and its argv[0] ends in name, so a recycled pid is
# never signalled.
ours() { # pid name
    local pid="$1" name="$2" argv0
    [ -r "/proc/$pid/cmdline" ] || return 1
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)"
    [ "${argv0##*/}" = "$name" ]
}

# Runs command detached and records its pid: its own session, so a Ctrl-C
# of a test run does not kill it; every fd redirected, so whoever captured
# our output is not held open; the lock's fd 9 closed, or the lock would be
# held for its lifetime.
start_component() { # name command args...
    local name="$1"; shift
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$state/$name.pid" "$@" \
        </dev/null >"$state/logs/$name.log" 2>&1 9>&- &
    for _ in $(seq 1 50); do [ -s "$state/$name.pid" ] && break; sleep 0.1; done
    say "started $name (pid $(cat "$state/$name.pid" 2>/dev/null || echo '?'))"
}

# Retries command every 0.5 s until it succeeds; calls `on_fail NAME
# MESSAGE` (which exits) when the component dies or the time runs out.
wait_component() { # on_fail name timeout-seconds command...
    local on_fail="$1" name="$2" timeout="$3"; shift 3
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        pid_alive "$name" || "$on_fail" "$name" "exited during startup"
        [ "$SECONDS" -lt "$deadline" ] || "$on_fail" "$name" "not ready after ${timeout}s"
        sleep 0.5
    done
}

# SIGTERM, then SIGKILL after 15 s, for the recorded pid if it is still the
# component; fails (keeping the pid file) if it survives both.
stop_component() { # name
    local name="$1" pid
    [ -f "$state/$name.pid" ] || return 0
    pid="$(cat "$state/$name.pid")"
    if [ -n "$pid" ] && ours "$pid" "$name"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do ours "$pid" "$name" || break; sleep 0.1; done
        if ours "$pid" "$name"; then
            say "$name (pid $pid) ignored SIGTERM for 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do ours "$pid" "$name" || break; sleep 0.1; done
        fi
        if ours "$pid" "$name"; then
            say "$name (pid $pid) is still running"
            return 1
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$state/$name.pid"
}
