# Sourced by the docs/mpi_*.sh scripts, with the script's own arguments: strict mode, the
# repository root as the working directory, the zo binary ($1, default target/debug/zo; it must
# be built with `--features mpi`) as an absolute path in $zo, a temporary folder $tmp removed on
# exit, OpenMPI allowed to run as root (the CI containers), and $mpi, the 2-rank launcher.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
zo=$(realpath "${1:-target/debug/zo}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="mpirun --allow-run-as-root --oversubscribe -np 2"
