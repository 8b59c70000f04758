// torchvision's ImageFolder layout: the input is a small file tree, lines of "path\tlength"
// followed by that many bytes each, which is written out and scanned, decoded and resized.
#include "data/image_folder.h"
#include "fuzz_input.h"

#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace dn;
    const auto root = fuzz::fuzz_folder("image_folder");
    std::string_view in(reinterpret_cast<const char*>(data), size);
    for (int files = 0; files < 16 && !in.empty(); ++files) {
        const size_t tab = in.find('\t'), eol = in.find('\n');
        if (tab == std::string_view::npos || eol == std::string_view::npos || tab > eol) break;
        std::string path(in.substr(0, tab));
        size_t length = 0;
        for (char c : in.substr(tab + 1, eol - tab - 1)) length = c >= '0' && c <= '9' ? length * 10 + size_t(c - '0') : length;
        in.remove_prefix(eol + 1);
        length = std::min(length, in.size());
        // Names stay inside the root: no absolute paths, no "..".
        if (path.empty() || path.front() == '/' || path.find("..") != std::string::npos) continue;
        try {
            fuzz::write_file(root / path, in.substr(0, length));
        } catch (const std::exception&) {
        }
        in.remove_prefix(length);
    }
    try {
        const ImageSet set = load_image_folder(root.string(), 8, 3);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
