// defines: cuda::nccl_built (whether this GPU engine has NCCL), cuda::nccl_collectives (a job's
//          processes, one GPU each, joined by NCCL)
#pragma once
#include "cuda/collectives.h"
#include "dist/communicator.h"

#include <memory>

namespace dn::cuda {

// Whether the engine was built with NCCL (CMake finds it beside the CUDA toolkit, or in NCCL_ROOT).
bool nccl_built();

// This process's NCCL communicator among comm's processes, on GPU `device`: rank 0 asks NCCL for
// the job's unique id, comm hands it to the others (MPI), and every process joins with its rank.
// Collectives run on the stream they are given, in comm's rank order. Throws std::runtime_error,
// one line, where NCCL fails (for example two processes on one GPU) or was not built.
std::unique_ptr<DeviceCollectives> nccl_collectives(Communicator& comm, int device);

}  // namespace dn::cuda
