// defines: Pass (what a network is built for: training, with backward passes, or inference)
#pragma once

namespace dn {

// training: primitives keep what backward needs (workspaces) and have backward passes.
enum class Pass { training, inference };

}  // namespace dn
