#!/bin/sh
# The recsys image's install steps, in one place: both stages of docker/Dockerfile run this script,
# and tests/test_docker.py runs it into a fresh virtual environment.
#
#   install.sh wheels SRC DIR   recsys's wheel from its source tree SRC, and the wheels of the
#                               dependencies PyPI has only as source (annoy, compiled: this step
#                               needs a C++ compiler), into DIR
#   install.sh install DIR      recsys from DIR's wheel, its dependencies from DIR or PyPI (torch as
#                               the registry resolves it: never a +cpu build, which breaks
#                               torchvision and so timm), then a check that the offline model
#                               weights load
#
# PYTHON names the interpreter to install into (default: python).
set -eu
python=${PYTHON:-python}

case "${1:-}" in
  wheels)
    "$python" -m pip wheel --no-deps --wheel-dir "$3" "$2" annoy
    ;;
  install)
    "$python" -m pip install --find-links "$2" "$2"/recsys-*.whl
    "$python" -c "from recsys.towers import create_tower; [create_tower(m).load() for m in ('image', 'text')]"
    ;;
  *)
    echo "usage: install.sh wheels SRC DIR | install.sh install DIR" >&2
    exit 2
    ;;
esac
