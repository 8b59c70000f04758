// defines: mpi_processes (the Communicator over MPI_COMM_WORLD; built only with MPI)
#pragma once
#include "dist/communicator.h"

namespace dn {

// Initialises MPI (only the calling thread makes MPI calls) and finalises it when destroyed.
std::unique_ptr<Communicator> mpi_processes();

}  // namespace dn
