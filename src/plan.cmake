# densenet_plan: the part of the engine that both the CPU (densenet_core) and the GPU
# (densenet_cuda) build on, with no library of either: the configuration, the parameter table,
# its initialisation and its safetensors checkpoints, the activation plan over one arena, and the
# optimizers' host side (their hyper-parameters, schedules and state files, which a GPU run saves
# and resumes in the CPU's format). Its one dependency is nlohmann-json (header-only): Debian's,
# or, on a GPU machine without it, a copy of /usr/include/nlohmann carried in build-deps/include;
# OpenMP where the compiler has it (the CPU optimizers' loops). Included once by whichever of
# src/CMakeLists.txt (the whole project) and the top level (DENSENET_CUDA_ONLY) builds first.
if(TARGET densenet_plan)
  return()
endif()
set(PLAN_SOURCES
  ${PROJECT_SOURCE_DIR}/src/tensor/arena.cpp
  ${PROJECT_SOURCE_DIR}/src/model/config.cpp
  ${PROJECT_SOURCE_DIR}/src/model/parameters.cpp
  ${PROJECT_SOURCE_DIR}/src/model/init.cpp
  ${PROJECT_SOURCE_DIR}/src/model/activation_plan.cpp
  ${PROJECT_SOURCE_DIR}/src/model/checkpoint.cpp
  ${PROJECT_SOURCE_DIR}/src/model/synthetic_batch.cpp
  ${PROJECT_SOURCE_DIR}/src/io/safetensors.cpp
  ${PROJECT_SOURCE_DIR}/src/io/atomic_file.cpp
  ${PROJECT_SOURCE_DIR}/src/ops/profiler.cpp
  ${PROJECT_SOURCE_DIR}/src/train/optimizer.cpp
  ${PROJECT_SOURCE_DIR}/src/train/lr_schedule.cpp
  ${PROJECT_SOURCE_DIR}/src/train/parameter_update.cpp
  ${PROJECT_SOURCE_DIR}/src/train/weight_average.cpp)
add_library(densenet_plan STATIC ${PLAN_SOURCES})
target_include_directories(densenet_plan PUBLIC ${PROJECT_SOURCE_DIR}/src)
# The average's blend rounds each product and the sum on its own, as PyTorch's ops and the GPU's
# blend_average: no multiply-add contraction there (GCC contracts by default).
set_source_files_properties(${PROJECT_SOURCE_DIR}/src/train/weight_average.cpp PROPERTIES COMPILE_OPTIONS
                            -ffp-contract=off)
find_package(OpenMP QUIET)
if(OpenMP_CXX_FOUND)
  target_link_libraries(densenet_plan PUBLIC OpenMP::OpenMP_CXX)
endif()
find_package(nlohmann_json QUIET)
if(nlohmann_json_FOUND)
  target_link_libraries(densenet_plan PUBLIC nlohmann_json::nlohmann_json)
else()
  find_path(NLOHMANN_JSON_INCLUDE_DIR nlohmann/json.hpp HINTS ${PROJECT_SOURCE_DIR}/build-deps/include REQUIRED)
  target_include_directories(densenet_plan PUBLIC ${NLOHMANN_JSON_INCLUDE_DIR})
endif()
