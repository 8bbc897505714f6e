// How kernelgen may obtain kernels (docs/design.md §7, "Modes"): one value chosen by `--mode`, the
// `mode` setting (KERNELGEN_MODE, the config file; default online) or CMake's
// kernelgen_add_attention(... MODE ...), and consulted by everything that would generate, store or
// reach beyond the local machine.
//
//   mode       serves hits  generates on a miss          stores what it made  daemon  network/LLM
//   online     yes          yes (kernelgend, or in       yes                  yes     yes
//                           process with --no-daemon)
//   offline    yes          no: a miss is an error       —                    no      no
//                           naming spec, key and the
//                           command that produces it
//   read_only  yes          yes, in process              no: the kernel goes  no      as online
//                                                        to the out dir only
//   recache    no           always, in process           yes, replacing the   no      as online
//                                                        record under the key
//
// Storage tiers consult it too: offline never asks a remote tier.
#pragma once

#include <string_view>

#include "util/expected.h"

namespace kg::lock {

enum class Mode { Online, Offline, ReadOnly, Recache };

// "online", "offline", "read_only", "recache": the spelling in messages and `config show`.
const char* mode_name(Mode mode);

// Reads "online", "offline", "read_only" (also "read-only"), "recache" in any case, surrounding
// blanks ignored. Error (Kind::Error): "expected online, offline, read_only or recache, found
// '<text>'" (the text escaped with printable()).
Expected<Mode, Failure> parse_mode(std::string_view text);

// Whether a mode lets kernelgen generate a kernel that is not cached (every mode but offline).
bool may_generate(Mode mode);

// Whether a mode lets kernelgen write the cache (online, recache).
bool may_store(Mode mode);

// Whether a mode lets kernelgen start or ask the daemon (online only: read_only and recache
// generate in the kernelgen process, offline generates nothing).
bool may_use_daemon(Mode mode);

// Whether a mode lets kernelgen reach the network: remote storage tiers, the LLM endpoint
// (every mode but offline).
bool may_use_network(Mode mode);

}  // namespace kg::lock
