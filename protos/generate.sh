#!/bin/sh
# Generate the Python gRPC stubs of protos/parley/v1 into OUTDIR: the one way, used by make and
# by every Dockerfile. Extra arguments go to protoc (make adds the mypy plugins).
#
#   sh protos/generate.sh PYTHON OUTDIR [protoc flags...]
set -eu
python=$1
out=$2
shift 2
cd "$(dirname "$0")/.."
rm -rf "$out"
mkdir -p "$out"
"$python" -m grpc_tools.protoc -I protos --python_out="$out" --grpc_python_out="$out" "$@" protos/parley/v1/*.proto
