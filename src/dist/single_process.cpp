// The job of one process: every collective is the identity, and costs nothing.
#include "dist/communicator.h"

#include <cstdlib>
#include <cstring>

namespace dn {

namespace {
class SingleProcess final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    int node_size() const override { return 1; }
    int node_rank() const override { return 0; }
    void sum(float*, int64_t) override {}
    void sum(double*, int64_t) override {}
    void gather_all(const double* mine, double* all, int64_t n) override {
        if (all != mine) std::memcpy(all, mine, size_t(n) * sizeof(double));
    }
    void broadcast(void*, int64_t, int) override {}
    void start_sum(float*, int64_t) override {}
    void progress() override {}
    void finish_sums() override {}
    [[noreturn]] void abort(int status) override { std::exit(status); }
};
}  // namespace

std::unique_ptr<Communicator> single_process() { return std::make_unique<SingleProcess>(); }

}  // namespace dn
