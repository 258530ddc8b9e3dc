#!/usr/bin/env bash
# The main job: install fastvol and load a series. No argument: the built-in sample series.
#   ci/demo.sh                      # synthetic CT phantom -> geometry report
#   ci/demo.sh /path/to/series ...  # any folder or files, options as for `fastvol --help`
source "$(dirname "$0")/_env.sh"
install_package ""
exec "$VENV/bin/fastvol" "$@"
