// defines: version_text, what `densenet --version` prints
#pragma once
#include <string>

namespace dn {

// The program's version, the oneDNN it runs on (asked at run time: the shared library installed
// may be newer than the headers it was built with), the instruction set oneDNN's kernels use on
// this CPU, and how this binary was built (portable or -march=native, MPI, CUDA).
std::string version_text();

}  // namespace dn
