#include "dist/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace dn {

namespace {
void check(int status, const char* what) {
    if (status == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(status, text, &length);
    throw std::runtime_error(std::string(what) + " failed: " + std::string(text, size_t(length)));
}

int count_of(int64_t n) {
    if (n < 0 || n > INT_MAX) throw std::invalid_argument("an MPI message of " + std::to_string(n) + " elements");
    return int(n);
}

class MpiProcesses final : public Communicator {
public:
    MpiProcesses() {
        int provided = 0;
        // FUNNELED: only this thread calls MPI; the OpenMP and loader threads never do.
        check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        // Errors come back as codes, which check() turns into exceptions that name the rank.
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        MPI_Comm node;
        check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
        MPI_Comm_size(node, &node_size_);
        MPI_Comm_rank(node, &node_rank_);
        MPI_Comm_free(&node);
    }
    ~MpiProcesses() override {
        finish_sums_quietly();
        MPI_Finalize();
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    int node_size() const override { return node_size_; }
    int node_rank() const override { return node_rank_; }

    void sum(float* values, int64_t n) override {
        check(MPI_Allreduce(MPI_IN_PLACE, values, count_of(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
    void sum(double* values, int64_t n) override {
        check(MPI_Allreduce(MPI_IN_PLACE, values, count_of(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
    void gather_all(const double* mine, double* all, int64_t n) override {
        check(MPI_Allgather(mine, count_of(n), MPI_DOUBLE, all, count_of(n), MPI_DOUBLE, MPI_COMM_WORLD),
              "MPI_Allgather");
    }
    void broadcast(void* bytes, int64_t count, int root) override {
        // In pieces: MPI counts are int, and a checkpoint's state can pass 2 GB.
        constexpr int64_t kPiece = int64_t(1) << 30;
        auto* p = static_cast<char*>(bytes);
        for (int64_t done = 0; done < count; done += kPiece)
            check(MPI_Bcast(p + done, count_of(std::min(kPiece, count - done)), MPI_BYTE, root, MPI_COMM_WORLD),
                  "MPI_Bcast");
    }

    void start_sum(float* values, int64_t n) override {
        MPI_Request request;
        check(MPI_Iallreduce(MPI_IN_PLACE, values, count_of(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &request),
              "MPI_Iallreduce");
        pending_.push_back(request);
    }
    void progress() override {
        if (pending_.empty()) return;
        int done = 0;
        check(MPI_Testall(int(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
        if (done) pending_.clear();
    }
    void finish_sums() override {
        if (pending_.empty()) return;
        check(MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
        pending_.clear();
    }

    [[noreturn]] void abort(int status) override {
        MPI_Abort(MPI_COMM_WORLD, status);
        std::_Exit(status);  // MPI_Abort does not return; should it, this process still ends
    }

private:
    void finish_sums_quietly() {
        if (!pending_.empty()) MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE);
        pending_.clear();
    }

    int rank_ = 0, size_ = 1, node_size_ = 1, node_rank_ = 0;
    std::vector<MPI_Request> pending_;
};
}  // namespace

std::unique_ptr<Communicator> mpi_processes() { return std::make_unique<MpiProcesses>(); }

}  // namespace dn
