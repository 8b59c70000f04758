#include "cuda/nccl_collectives.h"

#include "cuda/cuda_check.h"

#include <stdexcept>
#include <string>

#if DENSENET_NCCL
#include <nccl.h>
#endif

namespace dn::cuda {

#if DENSENET_NCCL

bool nccl_built() { return true; }

namespace {
void nccl_check(ncclResult_t status, const char* call, ncclComm_t comm = nullptr) {
    if (status == ncclSuccess) return;
    std::string why = ncclGetErrorString(status);
    if (const char* last = ncclGetLastError(comm); last && *last) why += std::string(": ") + last;
    throw std::runtime_error(std::string("NCCL ") + call + " failed (" + why +
                             "). HINT: each process needs a GPU of its own; NCCL_DEBUG=WARN says more");
}

class NcclCollectives final : public DeviceCollectives {
public:
    NcclCollectives(Communicator& comm, int device) : rank_(comm.rank()), size_(comm.size()) {
        CUDA_CHECK(cudaSetDevice(device));
        ncclUniqueId id{};
        if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
        comm.broadcast(&id, sizeof id, 0);
        nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    }
    ~NcclCollectives() override { ncclCommDestroy(comm_); }
    NcclCollectives(const NcclCollectives&) = delete;
    NcclCollectives& operator=(const NcclCollectives&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void sum(const float* mine, float* total, int64_t n, cudaStream_t stream) override {
        nccl_check(ncclAllReduce(mine, total, size_t(n), ncclFloat32, ncclSum, comm_, stream), "ncclAllReduce", comm_);
    }
    void gather_all(const double* mine, double* all, int64_t n, cudaStream_t stream) override {
        nccl_check(ncclAllGather(mine, all, size_t(n), ncclFloat64, comm_, stream), "ncclAllGather", comm_);
    }
    void broadcast(float* values, int64_t n, int root, cudaStream_t stream) override {
        nccl_check(ncclBroadcast(values, values, size_t(n), ncclFloat32, root, comm_, stream), "ncclBroadcast", comm_);
    }

private:
    int rank_, size_;
    ncclComm_t comm_ = nullptr;
};
}  // namespace

std::unique_ptr<DeviceCollectives> nccl_collectives(Communicator& comm, int device) {
    return std::make_unique<NcclCollectives>(comm, device);
}

#else

bool nccl_built() { return false; }

std::unique_ptr<DeviceCollectives> nccl_collectives(Communicator&, int) {
    throw std::runtime_error("this GPU engine was built without NCCL, which training on GPUs in several processes needs "
                             "(rebuild with NCCL found: NCCL_ROOT)");
}

#endif

}  // namespace dn::cuda
