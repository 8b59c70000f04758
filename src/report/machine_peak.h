// defines: MachinePeak, measure_machine_peak (the arithmetic and memory ceilings a profile is judged by)
#pragma once
#include <string>

namespace dn {

struct MachinePeak {
    double flops_per_second = 0.0;  // fp32, every OpenMP thread running independent FMA chains
    double bytes_per_second = 0.0;  // a parallel copy of buffers larger than the caches, read + write
    std::string flops_how, bytes_how;
};

// Measured, not looked up: a VM's nominal clock says little about its boost clock or how many FMA
// pipes a vector instruction occupies. Takes about a second, and maps 256 MB for the copy.
MachinePeak measure_machine_peak();

}  // namespace dn
