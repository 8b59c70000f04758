// defines: scratch_dir, a fresh folder for a test's files
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace dn::test {

// <tmp>/densenet_test_<pid>/<name>, emptied and created. The whole folder is removed at exit when
// every test passed, and stays behind to look at when one failed.
inline std::filesystem::path scratch_dir(const std::string& name) {
    namespace fs = std::filesystem;
    static const fs::path root = [] {
        std::atexit([] {
            if (::testing::UnitTest::GetInstance()->Passed()) {
                std::error_code ignored;
                fs::remove_all(fs::temp_directory_path() / ("densenet_test_" + std::to_string(::getpid())), ignored);
            }
        });
        return fs::temp_directory_path() / ("densenet_test_" + std::to_string(::getpid()));
    }();
    const fs::path dir = root / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

}  // namespace dn::test
