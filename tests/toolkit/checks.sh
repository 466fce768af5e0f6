# The pass/fail recorder of the shell test scripts (the shell side of tests/toolkit).
# Source it:   . "$root/tests/toolkit/checks.sh"
#
#   report RC NAME [FILE]   records a check: RC 0 passes; on failure FILE (its first
#                           60 lines) is shown under it
#   step NAME CMD...        runs CMD (output captured) and reports whether it succeeded
#   summary LABEL           prints "LABEL: N passed, M failed"; returns 1 when a check failed
#
# Output lines are the same as the Python recorder's (toolkit.results): "ok   NAME" and
# "FAIL NAME", then the closing count.
checks_pass=0
checks_fail=0

report() { # report RC NAME [FILE]
  if [ "$1" = 0 ]; then
    checks_pass=$((checks_pass + 1)); echo "ok   $2"
  else
    checks_fail=$((checks_fail + 1)); echo "FAIL $2"
    if [ -n "${3:-}" ] && [ -s "$3" ]; then sed 's/^/     /' "$3" | head -n 60; fi
  fi
  return 0
}

step() { # step NAME CMD...
  local name="$1" out rc=0
  shift
  out="$("$@" 2>&1)" || rc=$?
  if [ "$rc" = 0 ]; then report 0 "$name"; else
    report 1 "$name"; printf '%s\n' "$out" | sed 's/^/     /' | head -n 60
  fi
}

summary() { # summary LABEL
  echo "$1: $checks_pass passed, $checks_fail failed"
  [ "$checks_fail" = 0 ]
}
