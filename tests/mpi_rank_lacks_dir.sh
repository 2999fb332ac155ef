#!/usr/bin/env bash
# mpi_rank_lacks_dir.sh RANK DIR COMMAND... — runs COMMAND, but on MPI rank RANK (Open MPI's
# OMPI_COMM_WORLD_RANK, MPICH's PMI_RANK) every argument equal to DIR becomes DIR/absent: as if
# DIR existed on every node but that rank's. Launch it under mpirun.
set -u
rank=$1
dir=$2
shift 2
args=()
for a in "$@"; do
  if [ "${OMPI_COMM_WORLD_RANK:-${PMI_RANK:--1}}" = "$rank" ] && [ "$a" = "$dir" ]; then
    a=$dir/absent
  fi
  args+=("$a")
done
exec "${args[@]}"
