# Configures, builds and runs examples/attention_demo from a clean build directory.
#   cmake -DMODE=install|subdirectory -DKG_SOURCE_DIR=... -DKG_BINARY_DIR=... -DWORK_DIR=... -P example_project.cmake
# install:      `cmake --install` KernelGen into WORK_DIR/prefix, then find_package(KernelGen)
# subdirectory: add_subdirectory() of the KernelGen source tree
# Both use a fresh cache in WORK_DIR/cache, so the kernels are generated, not copied.
cmake_minimum_required(VERSION 3.25)

foreach(var MODE KG_SOURCE_DIR KG_BINARY_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "example_project.cmake: -D${var}=... is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(ENV{KERNELGEN_CACHE_DIR} "${WORK_DIR}/cache")
# The kernelgend that generates the kernels lives in a runtime directory of this test, and is
# stopped at the end.
file(MAKE_DIRECTORY "${WORK_DIR}/run")
set(ENV{XDG_RUNTIME_DIR} "${WORK_DIR}/run")

set(configure_args -S "${KG_SOURCE_DIR}/examples/attention_demo" -B "${WORK_DIR}/build" -G Ninja
                   -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} --install "${KG_BINARY_DIR}" --prefix "${WORK_DIR}/prefix")
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
  set(kernelgen "${WORK_DIR}/prefix/bin/kernelgen")
elseif(MODE STREQUAL "subdirectory")
  list(APPEND configure_args -DKERNELGEN_SOURCE_DIR=${KG_SOURCE_DIR})
  set(kernelgen "${WORK_DIR}/build/kernelgen/wrapper/kernelgen")
else()
  message(FATAL_ERROR "MODE must be install or subdirectory, not '${MODE}'")
endif()

run(${CMAKE_COMMAND} ${configure_args})
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")

# Every spec produced its files, and the cache now holds the five kernels.
foreach(name causal alibi_causal softcap_causal document_mask neighborhood_2d)
  foreach(ext .cu .h _reference.cu)
    set(f "${WORK_DIR}/build/kernelgen/attention_demo/${name}${ext}")
    if(NOT EXISTS "${f}")
      message(FATAL_ERROR "missing generated file ${f}")
    endif()
  endforeach()
endforeach()
execute_process(COMMAND "${kernelgen}" cache ls OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
string(REGEX MATCHALL "(^|\n)[0-9a-f]+ +[a-z_0-9]+ +sm_" keys "${listing}")
list(LENGTH keys n)
if(NOT rc EQUAL 0 OR NOT n EQUAL 5)
  message(FATAL_ERROR "expected 5 cached kernels, `kernelgen cache ls` printed (${rc}):\n${listing}")
endif()

# A second build regenerates nothing and recompiles nothing. (It may re-check globbed source
# lists, which is CMake's own CONFIGURE_DEPENDS check, not work.)
execute_process(COMMAND ${CMAKE_COMMAND} --build "${WORK_DIR}/build"
                OUTPUT_VARIABLE second ERROR_VARIABLE second_err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR second MATCHES "KernelGen: attention kernel|Building CUDA object|Linking")
  message(FATAL_ERROR "a second build did work (${rc}):\n${second}\n${second_err}")
endif()

# The demo runs the kernels where there is a GPU and says so where there is none.
run("${WORK_DIR}/build/attention_demo")
run("${kernelgen}" daemon stop)
