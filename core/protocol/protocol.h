// The messages of the kernelgen daemon protocol (docs/protocol.md): requests and responses as two
// closed sets of types, each encoded as one JSON object per frame (framing.h).
//
//   Request  = Generate | StatusRequest | StatsRequest | ShutdownRequest        client → daemon
//   Response = Hello | Progress | Result | Status | Stats | ShutdownAck | Error  daemon → client
//
// encode_* never fail; parse_* check every field they use and ignore unknown ones.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "cache/verification.h"
#include "util/expected.h"

namespace kg::protocol {

// docs/protocol.md's version; bump on any incompatible change. Part of the daemon's config id.
inline constexpr int kProtocolVersion = 1;

// ---- requests ------------------------------------------------------------------------------

struct GenerateRequest {
  std::string spec;    // YAML text
  std::string file;    // for diagnostics only
  std::string arch;    // any form resolve_arch() accepts; "" = the default
  bool verify = true;  // options.verify
  // options.budget_s: seconds the closed loop may spend on a miss; -1: the daemon's llm_budget;
  // 0: the template only. Added within protocol 2 (absent: -1).
  double budget_s = -1;
};
struct StatusRequest {};
struct StatsRequest {};
// Frozen across protocol versions: {"type": "shutdown"}.
struct ShutdownRequest {};

using Request = std::variant<GenerateRequest, StatusRequest, StatsRequest, ShutdownRequest>;

// ---- responses -----------------------------------------------------------------------------

struct Hello {
  std::string program = "kernelgend";
  int protocol = kProtocolVersion;
  std::string version;    // kVersion
  std::string generator;  // kGeneratorVersion
  std::string verifier;   // kVerifierVersion
  std::string config;     // config id (paths.h)
  int64_t pid = 0;
};

struct Progress {
  std::string key;
  std::string stage;    // "queued" | "generating" (later versions may add more)
  std::string message;  // one line for people
  int64_t elapsed_ms = 0;
};

enum class Outcome { None, CacheHit, Generated, Joined };

struct Result {
  bool ok = false;
  std::string key;                  // "" when the spec did not parse
  std::string name;                 // "" when the spec did not parse
  Outcome outcome = Outcome::None;  // None exactly when !ok
  cache::Verification verification = cache::Verification::Unverified;  // wire: verification_name()
  std::string error;                // when !ok: what failed (may be several lines)
};

struct Status {
  int64_t pid = 0;
  std::string version;
  int protocol = kProtocolVersion;
  std::string config;
  std::string cache_dir;
  std::string socket;
  std::string log;  // "" when logging to stderr (--foreground)
  double uptime_s = 0;
  int64_t idle_timeout_s = 0;  // 0: never
  int64_t jobs_limit = 0;
  int64_t active_jobs = 0;
  int64_t connections = 0;
  bool draining = false;
  std::string storage;  // the tiers it looks kernels up in, in order (storage::describe_setup); "" from older daemons
};

struct Stats {
  double uptime_s = 0;
  int64_t requests = 0;
  int64_t generate_requests = 0;
  int64_t cache_hits = 0;
  int64_t generations = 0;
  int64_t joins = 0;
  int64_t failures = 0;
  int64_t active_jobs = 0;
  int64_t connections = 0;
  int64_t protocol_errors = 0;
};

struct ShutdownAck {
  int64_t active_jobs = 0;  // jobs the daemon will finish before it exits
};

// Error codes of docs/protocol.md §5; the connection is closed after each.
enum class ErrorCode { FrameEmpty, FrameTooLarge, BadJson, BadRequest, UnknownRequest, Draining, Busy };

struct Error {
  ErrorCode code = ErrorCode::BadRequest;
  std::string message;
  int64_t connections = 0;  // busy: the connections the daemon serves (its limit); 0 otherwise
};

using Response = std::variant<Hello, Progress, Result, Status, Stats, ShutdownAck, Error>;

// ---- encoding and parsing ------------------------------------------------------------------

// The JSON text of a message (one frame's payload).
std::string encode(const Request& request);
std::string encode(const Response& response);

// Bounds on a message's JSON, checked on the raw text before it is parsed (a parser given
// 16 MiB of "[[[[..." or of "1,1,1,..." would recurse deeply or allocate hundreds of MiB): the
// nesting depth of arrays and objects, and the number of values (every ',' ':' '[' '{' outside
// strings counts one). Every message of this protocol has depth ≤ 3 and a few dozen values.
inline constexpr int kMaxJsonDepth = 16;
inline constexpr size_t kMaxJsonValues = 4096;

// Parses a request. The error carries the code to answer with (BadJson, BadRequest,
// UnknownRequest) and a message naming the offending field. JSON beyond kMaxJsonDepth or
// kMaxJsonValues is BadJson, refused before parsing.
Expected<Request, Error> parse_request(std::string_view json);

// Parses a response (client side). Errors (Failure::Kind::Error) name what is wrong: not JSON,
// beyond the bounds above, unknown type, a missing or mistyped field.
Expected<Response, Failure> parse_response(std::string_view json);

// Wire names: "cache_hit", "generated", "joined", "" (None); "frame_empty", ….
const char* outcome_name(Outcome outcome);
const char* error_code_name(ErrorCode code);

}  // namespace kg::protocol
