#!/usr/bin/env bash
# The test command (README): prepares this machine (idempotent), then builds and runs every test project.
# Usage: ./test.sh [extra dotnet test arguments]
set -euo pipefail
cd "$(dirname "$0")"
./infra/scripts/prepare.sh
# -warnaserror on the command line would also promote NuGet's NU1603 (a dependency's minimum version is not on the
# feed and the next one is taken; see Directory.Build.props), which the projects deliberately allow.
build_log="$(mktemp)"
if ! dotnet build CovidFunctions.sln -c Release -warnaserror -warnnotaserror:NU1603 >"$build_log" 2>&1; then
  # Errors first: the NU1603 warnings alone can fill what a CI log keeps.
  grep -E ": error " "$build_log" | sort -u | head -n 50
  grep -E ": warning " "$build_log" | grep -v NU1603 | sort -u | head -n 50
  tail -n 5 "$build_log"
  df -h . | tail -n 1
  exit 1
fi
tail -n 5 "$build_log"
dotnet test CovidFunctions.sln -c Release --no-build --logger "console;verbosity=normal" "$@"
