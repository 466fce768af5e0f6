#!/usr/bin/env bash
# Writes a copy of the canonical alert rules (helm/lease-elector/files/alerts.yaml)
# with every `for:` shortened, for tests against a real Prometheus that cannot
# wait minutes. The production file stays the single source of truth; the
# substitution is a plain line edit of every `for: <duration>` line:
#
#   tests/prometheus/make-test-rules.sh [-f FOR] [-j JOB] [-o OUT]
#     -f FOR  new `for` of every alert that has one (default 10s)
#     -j JOB  job label LeaseElectorCandidatesAbsent looks for (default: keep
#             job="lease-elector", the job_name the test scrape config should use)
#     -o OUT  output file (default: stdout)
#
# Thresholds and rate windows are unchanged: increase()/rate() work on short
# data, so the alerts behave the same, only sooner.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../../helm/lease-elector/files/alerts.yaml"
for_="10s" job="" out="/dev/stdout"
while getopts "f:j:o:h" opt; do
  case "$opt" in
    f) for_="$OPTARG" ;;
    j) job="$OPTARG" ;;
    o) out="$OPTARG" ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
  esac
done
[[ "$for_" =~ ^[0-9]+(ms|s|m|h)$ ]] || { echo "bad duration: $for_" >&2; exit 2; }
[[ -z "$job" || "$job" =~ ^[A-Za-z0-9_./:-]+$ ]] || { echo "bad job name: $job" >&2; exit 2; }
n="$(grep -cE '^ +for: ' "$src")"
[ "$n" -ge 4 ] || { echo "expected the for: lines in $src, found $n" >&2; exit 1; }
if [ -n "$job" ]; then
  sed -E -e "s/^( +for: ).*/\1$for_/" -e "s/\{job=\"lease-elector\"\}/{job=\"$job\"}/" "$src" > "$out"
else
  sed -E -e "s/^( +for: ).*/\1$for_/" "$src" > "$out"
fi
