# kernelgen_add_attention() resolves CUDA_ARCHITECTURES to the architecture set passed to
# `kernelgen emit --arch` (lists within one family, lists spanning both, all, all-major, -real and
# -virtual suffixes) and refuses what the kernels cannot serve. Configures a tiny C++ project per
# case; CUDA is not enabled (its compiler check takes a minute), so CMAKE_CUDA_COMPILER is set by
# hand to a stand-in that answers `--list-gpu-code` as nvcc 13 does, and the generated .cu sources
# are only listed. Nothing is built (tests/cmake/multiarch_build.cmake builds with nvcc).
#   cmake -DKG_SOURCE_DIR=... -DWORK_DIR=... -P arch_families.cmake
cmake_minimum_required(VERSION 3.25)
foreach(var KG_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "arch_families.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/src")
file(WRITE "${WORK_DIR}/src/main.cc" "int main() { return 0; }\n")
# nvcc 13's --list-gpu-code, in its order (110 before 103).
file(WRITE "${WORK_DIR}/fake_nvcc" "#!/bin/sh\nprintf 'sm_75\\nsm_80\\nsm_86\\nsm_87\\nsm_88\\nsm_89\\nsm_90\\nsm_100\\nsm_110\\nsm_103\\nsm_120\\nsm_121\\n'\n")
file(CHMOD "${WORK_DIR}/fake_nvcc" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)
file(WRITE "${WORK_DIR}/src/CMakeLists.txt" "
cmake_minimum_required(VERSION 3.25)
project(arch_case LANGUAGES CXX)
set(CMAKE_CUDA_COMPILER \"${WORK_DIR}/fake_nvcc\")
add_executable(app main.cc)
add_executable(kernelgen IMPORTED)
set_target_properties(kernelgen PROPERTIES IMPORTED_LOCATION /bin/true)
set(KERNELGEN_INCLUDE_DIR \"${KG_SOURCE_DIR}/core/include\")
include(\"${KG_SOURCE_DIR}/cmake/KernelGen.cmake\")
kernelgen_add_attention(app SPECS \"${KG_SOURCE_DIR}/specs/causal.yaml\" CUDA_ARCHITECTURES \${ARCHS})
get_target_property(_a app CUDA_ARCHITECTURES)
message(STATUS \"archs=\${_a}\")
")

set(n 0)
# expect(ARCHS OK TEXT [EMIT_ARCH]): configuring with CUDA_ARCHITECTURES ARCHS succeeds (OK) or
# fails, with TEXT in the output; EMIT_ARCH: the generation step runs `kernelgen emit --arch EMIT_ARCH`.
function(expect archs want_ok want_text)
  math(EXPR i "${n} + 1")
  set(n ${i} PARENT_SCOPE)
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${WORK_DIR}/src" -B "${WORK_DIR}/b${i}" -G Ninja "-DARCHS=${archs}"
                  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  set(all "${out}${err}")
  string(REGEX REPLACE "[ \n]+" " " flat "${all}")
  if(want_ok AND NOT rc EQUAL 0)
    message(FATAL_ERROR "CUDA_ARCHITECTURES '${archs}' should configure, but failed:\n${all}")
  elseif(NOT want_ok AND rc EQUAL 0)
    message(FATAL_ERROR "CUDA_ARCHITECTURES '${archs}' should be refused, but configured:\n${all}")
  endif()
  string(FIND "${flat}" "${want_text}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "CUDA_ARCHITECTURES '${archs}': expected the text '${want_text}' in:\n${all}")
  endif()
  if(ARGC GREATER 3)
    file(READ "${WORK_DIR}/b${i}/build.ninja" ninja)
    string(FIND "${ninja}" " --arch ${ARGV3} " at)
    if(at EQUAL -1)
      string(REGEX MATCH "emit --spec[^\n]*" line "${ninja}")
      message(FATAL_ERROR "CUDA_ARCHITECTURES '${archs}': expected `--arch ${ARGV3}` in the generation step:\n${line}")
    endif()
  endif()
  message(STATUS "ok: '${archs}' ${want_text} ${ARGV3}")
endfunction()

expect("90a" TRUE "archs=90a" "90a")
expect("80;86;89" TRUE "archs=80;86;89" "80,86,89")
expect("90a-real" TRUE "archs=90a-real" "90a")
# Both families: one kernel per family in the target; the set in the given order (emit sorts it).
expect("80;86;89;90a" TRUE "archs=80;86;89;90a" "80,86,89,90a")
expect("90a;80" TRUE "archs=90a;80" "90a,80")
expect("80-real;80-virtual;86;90a-real" TRUE "archs=80-real;80-virtual;86;90a-real" "80,86,90a")
# all / all-major: what the compiler lists from 80 on, Hopper as 90a, the highest also as PTX.
expect("all-major" TRUE "archs=80-real;90a-real;100-real;110-real;120" "80,90a,100,110,120")
expect("all" TRUE "archs=80-real;86-real;87-real;88-real;89-real;90a-real;100-real;103-real;110-real;120-real;121"
       "80,86,87,88,89,90a,100,103,110,120,121")
expect("90;90a" FALSE "has both 90 and 90a")
expect("75" FALSE "the kernels need sm_80 or newer")
expect("80;75" FALSE "the kernels need sm_80 or newer")
expect("sm90" FALSE "cannot read CUDA architecture 'sm90'")
