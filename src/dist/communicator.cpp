#include "dist/communicator.h"
#ifdef DENSENET_MPI
#include "dist/mpi_communicator.h"
#endif

#include <cstdlib>
#include <stdexcept>

namespace dn {

namespace {
// Set by Open MPI's mpirun and by PMI/PMIx launchers (MPICH's mpiexec, Slurm's srun).
bool launched_by_mpi() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
        if (std::getenv(name)) return true;
    return false;
}
}  // namespace

std::unique_ptr<Communicator> connect_processes() {
    if (!launched_by_mpi()) return single_process();
#ifdef DENSENET_MPI
    return mpi_processes();
#else
    throw std::runtime_error("started by an MPI launcher, but this densenet was built without MPI "
                             "(install libopenmpi-dev and rebuild)");
#endif
}

void broadcast_text(Communicator& comm, std::string& text, int root) {
    if (comm.size() == 1) return;
    int64_t length = int64_t(text.size());
    comm.broadcast(&length, sizeof length, root);
    text.resize(size_t(length));
    comm.broadcast(text.data(), length, root);
}

}  // namespace dn
