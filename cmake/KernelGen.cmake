#[=======================================================================[.rst:
KernelGen
---------

Generate verified CUDA attention kernels from spec files at build time.

This module is loaded by ``find_package(KernelGen)`` (after ``cmake --install`` of KernelGen) and
by ``add_subdirectory()`` / ``FetchContent`` of the KernelGen source tree. It provides one command.

.. command:: kernelgen_add_attention

  Add attention kernels, one per spec file, to a target::

    kernelgen_add_attention(<target>
      SPECS <spec.yaml>...
      [CUDA_ARCHITECTURES <arch>...]
      [OUT_DIR <dir>]
      [BUDGET <duration>]
      [LOCKFILE <file>]
      [MODE ONLINE|OFFLINE|READ_ONLY|RECACHE]
      [REFERENCE])

  For each spec, a custom command runs ``kernelgen emit`` at build time (never at configure time)
  and writes ``<name>.cu`` and ``<name>.h`` into ``OUT_DIR``, where ``<name>`` is the spec's
  ``name:`` field. The ``.cu`` files are added to ``<target>``'s sources and ``OUT_DIR`` and the
  KernelGen ABI header directory to its include directories (``PUBLIC``), so code that links
  ``<target>`` can ``#include "<name>.h"`` and call ``kg_<name>_forward()``.

  ``SPECS``
    Spec files, relative to the current source directory or absolute. Each spec's name must be
    unique within the target.

  ``CUDA_ARCHITECTURES``
    Targets to generate and compile for, as in the ``CUDA_ARCHITECTURES`` target property
    (e.g. ``90a``, ``80;86;89;90a``); they become ``<target>``'s ``CUDA_ARCHITECTURES`` property.
    Default: the target's property (initialised from ``CMAKE_CUDA_ARCHITECTURES``), else ``90a``.
    Every architecture must be sm_80 or newer. Kernels come in two families: ``90a`` (H100/H200,
    wgmma; runs only there) and sm_80-class (``80``, ``86``, ``89``, ``90``, ``100``, ...;
    mma.sync). A list within one family gives that family's kernel. A list that spans both
    (``80;86;89;90a``) gives one ``<name>.cu`` holding both kernels, each compiled for the
    architectures it supports, and ``kg_<name>_forward()`` picks one by the device it runs on:
    the wgmma kernel on compute capability 9.0, the mma.sync kernel on a device that one of the
    listed sm_80-class architectures runs on (same major version, minor version at least the
    listed one); on any other device it returns ``cudaErrorNoKernelImageForDevice`` and launches
    nothing. Verification on a GPU runs the family of that GPU; the other family's kernel is
    compiled (for every listed architecture) but not run there.

    ``-real`` and ``-virtual`` suffixes are passed on to the target and do not change the
    kernel. ``all`` is every real architecture from 80 on that the CUDA compiler lists
    (``nvcc --list-gpu-code``), ``all-major`` those of them with minor version 0 (``80``,
    ``90a``, ``100``, ``110``, ``120`` for CUDA 13); in both, Hopper is taken as ``90a`` so that
    it gets the wgmma kernel, and the highest architecture is also built as PTX, as CMake does.
    The target's property is set to that list. ``native`` is resolved to the build machine's
    GPU where this CMake can (an error otherwise). A list holding both ``90`` and ``90a`` is
    refused (two kernels for one GPU, and the CUDA driver, not KernelGen, would choose).

    The architectures are one input of the kernel's cache key, as a set: order and duplicates do
    not matter, and a one-architecture list has the same key as before sets existed.
    ``kernelgen emit --arch`` takes the same set, separated by ``,`` or ``;``
    (``--arch 80,86,89,90a``); records, lockfiles and ``kernelgen cache ls`` write it as
    ``sm_80,sm_86,sm_89,sm_90a`` (sorted by compute capability, no duplicates).

  ``OUT_DIR``
    Where generated files go. Default: ``${CMAKE_CURRENT_BINARY_DIR}/kernelgen/<target>``.

  ``BUDGET``
    Time the closed loop may spend on each kernel that is not cached: seconds, or a number with
    ``s``, ``m`` or ``h`` (``90s``, ``15m``, ``1h``). Default: the ``llm_budget`` setting (15
    minutes). ``BUDGET 0`` means the template kernel only. The loop runs only when an LLM endpoint
    is configured (``KERNELGEN_LLM_URL`` and friends in the environment of the build, or the
    config file; ``kernelgen generate --help``) and a GPU verifies candidates; otherwise the
    template kernel stands, and the daemon's progress says why. A kernel the loop made is cached
    like any other: later builds are cache hits.

  ``LOCKFILE``
    A lockfile written by ``kernelgen lock`` (relative to the current source directory, or
    absolute; it must exist at configure time). Each spec's kernel is checked against it before
    anything is written: the spec's entry (found by the spec's path relative to the lockfile's
    directory, else by name and architecture) must name the key the spec resolves to and the
    digest of the kernel the cache holds for that key. Otherwise the build step fails and says
    what differs — the key (the spec or KernelGen changed) or the kernel (the cache holds a
    different kernel for the same key) — and how to accept the change (``kernelgen lock --update
    --lockfile <file> <spec>``). A spec with no entry fails too. The lockfile is a dependency of
    every generation step: changing it re-checks them all.

  ``MODE``
    How kernels may be obtained (default: the ``mode`` setting of the build's environment,
    ``KERNELGEN_MODE``, else ``ONLINE``):

    ``ONLINE``
      A cached kernel is used; a missing one is generated (by ``kernelgend``) and cached.
    ``OFFLINE``
      Cached kernels only: nothing is generated, no daemon is started or asked, nothing reaches
      the network or an LLM. A kernel that is not cached fails the build step with a message
      naming the spec, its key and how to produce it (``kernelgen emit`` on a machine with a GPU,
      or ``kernelgen cache import`` of a bundle).
    ``READ_ONLY``
      Cached kernels are used; a missing one is generated in the ``kernelgen`` process and
      written to ``OUT_DIR`` only. The cache is never written.
    ``RECACHE``
      Each generation step that runs ignores the cached kernel, generates it again in the
      ``kernelgen`` process and replaces the cached record. (A step runs when its spec, the tool
      or the lockfile changed, or its outputs are missing.)

  ``REFERENCE``
    Also generate ``<name>_reference.cu``, the plain fp32 reference kernel
    ``kg_<name>_reference_forward()`` with the same ABI, for tests.

  A spec is regenerated when the spec file or the ``kernelgen`` tool changes. Unchanged outputs
  keep their time stamps, so nothing is recompiled when the kernel is the same. Kernels come from
  the KernelGen cache when present there (see ``kernelgen cache stats``); the cache directory is
  ``KERNELGEN_CACHE_DIR`` (this CMake variable, else the environment variable of that name at build
  time, else ``$XDG_CACHE_HOME/kernelgen``).

  On a cache miss ``kernelgen`` asks ``kernelgend``, the KernelGen daemon, which it starts when
  none runs (installed beside ``kernelgen``): parallel builds asking for the same kernel share one
  generation. ``kernelgen daemon status`` shows it.

  Generation jobs run in the Ninja job pool ``kernelgen`` (size ``KERNELGEN_JOB_POOL_SIZE``,
  default 4), so a parallel build does not start more of them than that.

  Compiling a ``90a`` kernel prints ``ptxas info`` lines (information, not warnings: ``-Werror``
  builds pass). ``(C7519) warpgroup.arrive is injected ... to allow use of registers in GMMA``
  appears for every spec: ptxas adds a register fence before the ``O += P V`` MMA, whose operand
  ``P`` was just computed in registers by the softmax; the kernel's own fence sits there already,
  and the added one costs one instruction per tile. No kernel prints ``(C7520) ... wgmma.mma_async
  instructions are serialized``: a mask that reads runtime tensors (document ids, per-head
  choices) has its tiles classified from the tensor elements (a tile inside one document is Full,
  one between two documents Empty), and every tile it visits runs its MMAs, so no branch that
  ptxas cannot prove uniform stands between them.

Variables
^^^^^^^^^

``KERNELGEN_EXECUTABLE``
  The ``kernelgen`` program. Set by ``find_package``; in a source-tree build the ``kernelgen``
  target is used.

``KERNELGEN_INCLUDE_DIR``
  Directory holding ``kernelgen/attention_abi.h``.

``KERNELGEN_CACHE_DIR``
  Optional cache directory passed to every generation command.

``KERNELGEN_REPRODUCIBLE_OBJECTS``
  ``ON`` (default): a target given to ``kernelgen_add_attention`` compiles its CUDA sources through
  ``kernelgen launch`` (its ``CUDA_COMPILER_LAUNCHER``, in front of any launcher already set, such
  as ccache). nvcc writes the names of its temporary files, ``tmpxft_<pid>_<n>``, into every
  object; the launcher zeroes those digits, so a kernel compiles to the same bytes on every run and
  in every checkout. Generated kernels use a namespace named after their key, never an anonymous
  one (whose mangled name nvcc derives from the source path). Objects built with host debug info
  (``-g``) still hold the build directory, as with any compiler, unless the build maps it away
  (``-ffile-prefix-map``).

Example
^^^^^^^

.. code-block:: cmake

  find_package(KernelGen REQUIRED)
  add_executable(app main.cu)
  kernelgen_add_attention(app
    SPECS specs/causal.yaml specs/alibi_causal.yaml
    CUDA_ARCHITECTURES 90a
    LOCKFILE kernelgen.lock)

  The lockfile comes from a first build without ``LOCKFILE``: ``kernelgen lock specs/*.yaml`` in the
  source directory writes ``kernelgen.lock`` there; commit it. A CI machine without a GPU or
  network can add ``MODE OFFLINE`` and a cache imported from a bundle.
#]=======================================================================]

include_guard(GLOBAL)

# Where this file lives: <prefix>/lib/cmake/KernelGen when installed, <source>/cmake in a source tree.
set(_KERNELGEN_MODULE_DIR "${CMAKE_CURRENT_LIST_DIR}")

if(NOT KERNELGEN_INCLUDE_DIR AND EXISTS "${_KERNELGEN_MODULE_DIR}/../core/include/kernelgen/attention_abi.h")
  get_filename_component(KERNELGEN_INCLUDE_DIR "${_KERNELGEN_MODULE_DIR}/../core/include" ABSOLUTE)
endif()
# Variables are directory-scoped: a project that add_subdirectory()s KernelGen calls the function
# from a scope that never saw them, so the function reads this global copy.
set_property(GLOBAL PROPERTY _KERNELGEN_INCLUDE_DIR "${KERNELGEN_INCLUDE_DIR}")

set(KERNELGEN_JOB_POOL_SIZE 4 CACHE STRING "Most kernelgen generation jobs at once (Ninja job pool)")
option(KERNELGEN_REPRODUCIBLE_OBJECTS
       "Compile targets with generated kernels through `kernelgen launch`, which makes nvcc's objects reproducible" ON)

function(_kernelgen_spec_name spec_file out_var)
  # The build needs each output's name before anything is built, so read `name:` here. The
  # generator checks it again (--expect-name) and fails clearly if this reading was wrong.
  file(STRINGS "${spec_file}" _lines REGEX "^name[ \t]*:")
  set(_name "")
  foreach(_line IN LISTS _lines)
    if(_line MATCHES "^name[ \t]*:[ \t]*[\"']?([A-Za-z_][A-Za-z0-9_]*)")
      set(_name "${CMAKE_MATCH_1}")
      break()
    endif()
  endforeach()
  if(_name STREQUAL "")
    message(FATAL_ERROR "kernelgen_add_attention: ${spec_file}: no `name: <identifier>` line found at the "
                        "start of a line; every spec needs one")
  endif()
  set(${out_var} "${_name}" PARENT_SCOPE)
endfunction()

# The real architectures the CUDA compiler can build for, as numbers with suffix ("80;86;90;100"),
# for `all` and `all-major`: nvcc's --list-gpu-code, else CMake's own list (which may be older
# than the compiler). Empty when neither says.
function(_kernelgen_compiler_archs out_var)
  get_property(_known GLOBAL PROPERTY _KERNELGEN_COMPILER_ARCHS SET)
  if(_known)
    get_property(_archs GLOBAL PROPERTY _KERNELGEN_COMPILER_ARCHS)
    set(${out_var} "${_archs}" PARENT_SCOPE)
    return()
  endif()
  set(_archs)
  if(CMAKE_CUDA_COMPILER)
    execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --list-gpu-code OUTPUT_VARIABLE _out ERROR_QUIET
                    RESULT_VARIABLE _rc TIMEOUT 60)
    if(_rc EQUAL 0)
      string(REGEX MATCHALL "sm_[0-9]+[af]?" _codes "${_out}")
      foreach(_c IN LISTS _codes)
        string(REGEX REPLACE "^sm_" "" _c "${_c}")
        list(APPEND _archs "${_c}")
      endforeach()
    endif()
  endif()
  if(NOT _archs)
    foreach(_a IN LISTS CMAKE_CUDA_ARCHITECTURES_ALL)
      string(REGEX REPLACE "-(real|virtual)$" "" _a "${_a}")
      list(APPEND _archs "${_a}")
    endforeach()
  endif()
  list(REMOVE_DUPLICATES _archs)
  set_property(GLOBAL PROPERTY _KERNELGEN_COMPILER_ARCHS "${_archs}")
  set(${out_var} "${_archs}" PARENT_SCOPE)
endfunction()

# Resolves a target's CUDA_ARCHITECTURES to the architecture set the kernels are generated for.
# Each generated kernel belongs to a family: sm_90a (wgmma, runs only on sm_90a) or sm_80-class
# (mma.sync, runs on sm_80 and newer: 80, 86, 89, 90, 100, ...). A set that holds both gets both
# kernels in one file, dispatched by the running device (core/codegen/codegen.h).
#   out_var        the set for `kernelgen emit --arch`: the plain architectures joined by ','
#                  ("80,86,89,90a"; -real/-virtual dropped: the kernel source is the same)
#   out_prop_var   the list the target's CUDA_ARCHITECTURES property should hold: `archs` itself,
#                  except for all, all-major and native, which become the list they resolve to
#                  (so that the target builds exactly the architectures the kernels serve)
# `all` is every real architecture from 80 on that the compiler knows, `all-major` those with
# minor version 0; in both, Hopper is 90a (it gets the wgmma kernel) and the highest one is also
# built as PTX (no suffix), as CMake does for these values. Architectures before 80, a list
# holding both 90 and 90a (two cubins for one GPU), and spellings other than <digits>[a|f]
# with an optional -real/-virtual suffix are refused with a message.
function(_kernelgen_resolve_archs target archs out_var out_prop_var)
  set(_list "${archs}")
  set(_prop "${archs}")
  if(_list STREQUAL "native")
    if(CMAKE_CUDA_ARCHITECTURES_NATIVE)
      set(_list "${CMAKE_CUDA_ARCHITECTURES_NATIVE}")
      set(_prop "${_list}")
    else()
      message(FATAL_ERROR "kernelgen_add_attention(${target}): CUDA_ARCHITECTURES native could not be "
                          "resolved by this CMake; name the architecture, e.g. CUDA_ARCHITECTURES 90a")
    endif()
  endif()
  if(_list MATCHES "^all(-major)?$")
    set(_which "${_list}")
    _kernelgen_compiler_archs(_known)
    set(_list)
    foreach(_a IN LISTS _known)
      if(NOT _a MATCHES "^([0-9]+)$" OR CMAKE_MATCH_1 LESS 80)
        continue()  # suffixed (90a is added for 90 below) or too old for the kernels
      endif()
      math(EXPR _minor "${_a} % 10")
      if(_which STREQUAL "all-major" AND NOT _minor EQUAL 0)
        continue()
      endif()
      if(_a STREQUAL "90")
        set(_a 90a)
      endif()
      list(APPEND _list "${_a}")
    endforeach()
    list(SORT _list COMPARE NATURAL)
    if(NOT _list)
      message(FATAL_ERROR "kernelgen_add_attention(${target}): CUDA_ARCHITECTURES ${_which} could not be "
                          "resolved: the CUDA compiler '${CMAKE_CUDA_COMPILER}' listed no architecture from 80 "
                          "on (nvcc --list-gpu-code); name them, e.g. CUDA_ARCHITECTURES 80;86;89;90a")
    endif()
    # Real code for each; the highest also as PTX, like CMake's all and all-major.
    list(LENGTH _list _n)
    math(EXPR _last "${_n} - 1")
    set(_prop)
    foreach(_i RANGE ${_last})
      list(GET _list ${_i} _a)
      if(_i EQUAL _last)
        list(APPEND _prop "${_a}")
      else()
        list(APPEND _prop "${_a}-real")
      endif()
    endforeach()
  endif()
  set(_plain_all)
  foreach(_a IN LISTS _list)
    string(REGEX REPLACE "-(real|virtual)$" "" _plain "${_a}")
    if(NOT _plain MATCHES "^([0-9]+)([af]?)$")
      message(FATAL_ERROR "kernelgen_add_attention(${target}): cannot read CUDA architecture '${_a}' "
                          "(expected a number with an optional a or f suffix, such as 90a or 80)")
    endif()
    if(CMAKE_MATCH_1 LESS 80)
      message(FATAL_ERROR "kernelgen_add_attention(${target}): the target builds for CUDA architecture "
                          "'${_a}', but the kernels need sm_80 or newer (tensor-core mma.sync); pass "
                          "CUDA_ARCHITECTURES 90a or set the target's CUDA_ARCHITECTURES")
    endif()
    list(APPEND _plain_all "${_plain}")
  endforeach()
  if(NOT _plain_all)
    message(FATAL_ERROR "kernelgen_add_attention(${target}): CUDA_ARCHITECTURES '${archs}' names no architecture")
  endif()
  list(REMOVE_DUPLICATES _plain_all)
  if("90" IN_LIST _plain_all AND "90a" IN_LIST _plain_all)
    message(FATAL_ERROR "kernelgen_add_attention(${target}): CUDA_ARCHITECTURES '${archs}' has both 90 and 90a, "
                        "which build two kernels for the same GPU (H100/H200) and leave the choice to the CUDA "
                        "driver; keep 90a (the wgmma kernel) or 90 (the mma.sync kernel)")
  endif()
  string(REPLACE ";" "," _set "${_plain_all}")
  set(${out_var} "${_set}" PARENT_SCOPE)
  set(${out_prop_var} "${_prop}" PARENT_SCOPE)
endfunction()

function(kernelgen_add_attention target)
  cmake_parse_arguments(PARSE_ARGV 1 _KG "REFERENCE" "OUT_DIR;BUDGET;LOCKFILE;MODE" "SPECS;CUDA_ARCHITECTURES")
  if(_KG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kernelgen_add_attention: unknown arguments: ${_KG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "kernelgen_add_attention: '${target}' is not a target; create it first "
                        "(add_executable or add_library)")
  endif()
  if(NOT _KG_SPECS)
    message(FATAL_ERROR "kernelgen_add_attention(${target}): SPECS needs at least one spec file")
  endif()
  if(NOT CMAKE_CUDA_COMPILER)
    message(FATAL_ERROR "kernelgen_add_attention(${target}): CUDA is not enabled; add CUDA to project(... "
                        "LANGUAGES ...) or call enable_language(CUDA)")
  endif()

  # The tool: the in-tree target if there is one, else the installed program.
  if(TARGET kernelgen)
    set(_exe "$<TARGET_FILE:kernelgen>")
    set(_exe_dep kernelgen)
  elseif(KERNELGEN_EXECUTABLE)
    set(_exe "${KERNELGEN_EXECUTABLE}")
    set(_exe_dep "${KERNELGEN_EXECUTABLE}")
  else()
    message(FATAL_ERROR "kernelgen_add_attention: no kernelgen program: use find_package(KernelGen) or "
                        "add_subdirectory() of the KernelGen source tree")
  endif()

  # Architectures: the argument (which then becomes the target's), else the target's property.
  if(_KG_CUDA_ARCHITECTURES)
    set(_archs "${_KG_CUDA_ARCHITECTURES}")
    set_property(TARGET ${target} PROPERTY CUDA_ARCHITECTURES ${_archs})
  else()
    get_target_property(_archs ${target} CUDA_ARCHITECTURES)
    if(NOT _archs)
      set(_archs 90a)
      set_property(TARGET ${target} PROPERTY CUDA_ARCHITECTURES ${_archs})
    endif()
  endif()
  _kernelgen_resolve_archs(${target} "${_archs}" _arch _arch_prop)
  if(NOT _arch_prop STREQUAL _archs)
    set_property(TARGET ${target} PROPERTY CUDA_ARCHITECTURES ${_arch_prop})
  endif()
  set(_abi_include "${KERNELGEN_INCLUDE_DIR}")
  if(NOT _abi_include)
    get_property(_abi_include GLOBAL PROPERTY _KERNELGEN_INCLUDE_DIR)
  endif()
  if(NOT EXISTS "${_abi_include}/kernelgen/attention_abi.h")
    message(FATAL_ERROR "kernelgen_add_attention(${target}): kernelgen/attention_abi.h not found under "
                        "'${_abi_include}'; set KERNELGEN_INCLUDE_DIR")
  endif()

  set(_out "${_KG_OUT_DIR}")
  if(NOT _out)
    set(_out "${CMAKE_CURRENT_BINARY_DIR}/kernelgen/${target}")
  endif()
  get_filename_component(_out "${_out}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")

  set(_extra)
  if(_KG_REFERENCE)
    list(APPEND _extra --reference)
  endif()
  if(DEFINED _KG_BUDGET)
    if(NOT _KG_BUDGET MATCHES "^[0-9]+(\\.[0-9]+)?[ ]*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?$")
      message(FATAL_ERROR "kernelgen_add_attention(${target}): BUDGET '${_KG_BUDGET}' is not a duration "
                          "(expected seconds, or a number with s, m or h: 90s, 15m, 1h; 0 for the template only)")
    endif()
    list(APPEND _extra --budget "${_KG_BUDGET}")
  endif()
  set(_lock_dep)
  if(DEFINED _KG_LOCKFILE)
    get_filename_component(_lockfile "${_KG_LOCKFILE}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(NOT EXISTS "${_lockfile}" OR IS_DIRECTORY "${_lockfile}")
      message(FATAL_ERROR "kernelgen_add_attention(${target}): LOCKFILE ${_lockfile} does not exist; build once "
                          "without LOCKFILE, then write it with `kernelgen lock --lockfile ${_lockfile} SPEC...`")
    endif()
    list(APPEND _extra --lockfile "${_lockfile}")
    set(_lock_dep "${_lockfile}")
  endif()
  if(DEFINED _KG_MODE)
    string(TOUPPER "${_KG_MODE}" _mode)
    if(NOT _mode MATCHES "^(ONLINE|OFFLINE|READ_ONLY|RECACHE)$")
      message(FATAL_ERROR "kernelgen_add_attention(${target}): MODE '${_KG_MODE}' is not one of ONLINE, OFFLINE, "
                          "READ_ONLY, RECACHE")
    endif()
    string(TOLOWER "${_mode}" _mode)
    list(APPEND _extra --mode "${_mode}")
  endif()
  if(NOT CMAKE_GENERATOR MATCHES "Ninja")
    # Make has no restat: keep outputs newer than their inputs so they are not regenerated forever.
    list(APPEND _extra --touch)
  endif()
  set(_global)
  if(KERNELGEN_CACHE_DIR)
    list(APPEND _global --cache-dir "${KERNELGEN_CACHE_DIR}")
  endif()

  get_property(_pools GLOBAL PROPERTY JOB_POOLS)
  if(NOT _pools MATCHES "(^|;)kernelgen=")
    set_property(GLOBAL APPEND PROPERTY JOB_POOLS kernelgen=${KERNELGEN_JOB_POOL_SIZE})
  endif()

  get_target_property(_seen ${target} _KERNELGEN_NAMES)
  if(NOT _seen)
    set(_seen)
  endif()
  set(_sources)
  foreach(_spec IN LISTS _KG_SPECS)
    get_filename_component(_spec "${_spec}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    if(NOT EXISTS "${_spec}")
      message(FATAL_ERROR "kernelgen_add_attention(${target}): spec file ${_spec} does not exist")
    endif()
    # Re-run configure when a spec changes, so a renamed kernel is picked up.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_spec}")
    _kernelgen_spec_name("${_spec}" _name)
    if(_name IN_LIST _seen)
      message(FATAL_ERROR "kernelgen_add_attention(${target}): two specs are named '${_name}'; spec names "
                          "must be unique within a target")
    endif()
    list(APPEND _seen "${_name}")

    set(_outputs "${_out}/${_name}.cu" "${_out}/${_name}.h")
    if(_KG_REFERENCE)
      list(APPEND _outputs "${_out}/${_name}_reference.cu")
    endif()
    add_custom_command(
      OUTPUT ${_outputs}
      COMMAND "${_exe}" ${_global} emit --spec "${_spec}" --out-dir "${_out}" --arch "${_arch}"
              --expect-name "${_name}" ${_extra}
      DEPENDS "${_spec}" ${_exe_dep} ${_lock_dep}
      COMMENT "KernelGen: attention kernel ${_name} (${_arch})"
      JOB_POOL kernelgen
      VERBATIM)
    list(APPEND _sources ${_outputs})
  endforeach()
  set_property(TARGET ${target} PROPERTY _KERNELGEN_NAMES "${_seen}")

  target_sources(${target} PRIVATE ${_sources})
  target_include_directories(${target} PUBLIC "$<BUILD_INTERFACE:${_out}>"
                                              "$<BUILD_INTERFACE:${_abi_include}>")

  # Reproducible objects: nvcc's temporary-file names (tmpxft_<pid>_<n>) end up in every object it
  # writes, so the same kernel compiled twice differs in those digits. `kernelgen launch` runs the
  # compiler and zeroes them; it goes in front of any launcher the target already has (ccache).
  if(KERNELGEN_REPRODUCIBLE_OBJECTS)
    get_target_property(_launcher ${target} CUDA_COMPILER_LAUNCHER)
    if(NOT _launcher)
      set(_launcher)
    endif()
    if(NOT _launcher MATCHES "(^|;)launch;--(;|$)")
      set_property(TARGET ${target} PROPERTY CUDA_COMPILER_LAUNCHER "${_exe}" launch -- ${_launcher})
    endif()
  endif()
endfunction()
