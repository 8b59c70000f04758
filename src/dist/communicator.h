// defines: Communicator (the collectives data-parallel training needs), connect_processes,
//          single_process, broadcast_text
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace dn {

// The processes of one job and the collective operations between them. MPI implements it across
// processes and machines (dist/mpi_communicator.cpp), and a single process implements it at no
// cost. On GPUs, NCCL sums device memory (cuda/nccl_collectives.h) and meets its peers through
// this interface.
//
// Every collective must be called by every process, in the same order. Sums give every process
// the same bits.
class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;       // 0 .. size() - 1
    virtual int size() const = 0;
    virtual int node_size() const = 0;  // processes on this machine, this one included
    virtual int node_rank() const = 0;  // this one's number among them, 0 .. node_size() - 1

    virtual void sum(float* values, int64_t n) = 0;  // in place
    virtual void sum(double* values, int64_t n) = 0;
    // all (size(), n) receives every process's `mine` (n), in rank order.
    virtual void gather_all(const double* mine, double* all, int64_t n) = 0;
    virtual void broadcast(void* bytes, int64_t count, int root) = 0;

    // Sums that run while the caller computes: start_sum returns at once; progress() lets the
    // started sums advance and returns at once; finish_sums() waits for all of them. values must
    // stay untouched until then.
    virtual void start_sum(float* values, int64_t n) = 0;
    virtual void progress() = 0;
    virtual void finish_sums() = 0;

    // Ends every process of the job, now (a failed process must not leave the others waiting).
    [[noreturn]] virtual void abort(int status) = 0;
};

// MPI when this process was started by mpirun (or another MPI launcher), else a single process.
// Throws std::runtime_error when launched by MPI in a build without it.
std::unique_ptr<Communicator> connect_processes();

// The single process, directly.
std::unique_ptr<Communicator> single_process();

// root's text to every process (each may hold any text before).
void broadcast_text(Communicator& comm, std::string& text, int root);

}  // namespace dn
