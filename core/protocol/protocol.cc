#include "protocol/protocol.h"

#include <nlohmann/json.hpp>

#include "protocol/request_check.h"

namespace kg::protocol {

namespace {

using nlohmann::json;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// Reads an optional field of `object` with the JSON type `T` stands for. Absent: `fallback`.
// Present with another type: an error naming the field.
template <typename T>
Expected<T, std::string> field(const json& object, const char* name, T fallback) {
  auto it = object.find(name);
  if (it == object.end()) {
    return fallback;
  }
  const json& v = *it;
  if constexpr (std::is_same_v<T, std::string>) {
    if (v.is_string()) {
      return v.get<std::string>();
    }
    return unexpected(std::string("field '") + name + "' must be a string, not " + v.type_name());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (v.is_boolean()) {
      return v.get<bool>();
    }
    return unexpected(std::string("field '") + name + "' must be true or false, not " + v.type_name());
  } else if constexpr (std::is_same_v<T, double>) {
    if (v.is_number()) {
      return v.get<double>();
    }
    return unexpected(std::string("field '") + name + "' must be a number, not " + v.type_name());
  } else {
    static_assert(std::is_same_v<T, int64_t>);
    if (v.is_number_integer()) {
      return v.get<int64_t>();
    }
    return unexpected(std::string("field '") + name + "' must be an integer, not " + v.type_name());
  }
}

// Like field(), but absent is an error too.
template <typename T>
Expected<T, std::string> required(const json& object, const char* name) {
  if (!object.contains(name)) {
    return unexpected(std::string("field '") + name + "' is missing");
  }
  return field<T>(object, name, T{});
}

Expected<Outcome, std::string> parse_outcome(const std::string& s) {
  for (Outcome o : {Outcome::None, Outcome::CacheHit, Outcome::Generated, Outcome::Joined}) {
    if (s == outcome_name(o)) {
      return o;
    }
  }
  return unexpected("unknown outcome '" + printable(s.substr(0, 64)) + "'");
}

// "" (a failed result) reads as Unverified.
Expected<cache::Verification, std::string> parse_verification_field(const std::string& s) {
  if (s.empty()) {
    return cache::Verification::Unverified;
  }
  if (auto v = cache::parse_verification(s)) {
    return *v;
  }
  return unexpected("unknown verification state '" + s + "'");
}

Expected<ErrorCode, std::string> parse_error_code(const std::string& s) {
  for (ErrorCode c :
       {ErrorCode::FrameEmpty, ErrorCode::FrameTooLarge, ErrorCode::BadJson, ErrorCode::BadRequest,
        ErrorCode::UnknownRequest, ErrorCode::Draining, ErrorCode::Busy}) {
    if (s == error_code_name(c)) {
      return c;
    }
  }
  return unexpected("unknown error code '" + printable(s.substr(0, 64)) + "'");
}

// Assigns `out` from field `name`, or returns the field's error from the enclosing function
// (which returns Expected<…, std::string>).
// Refuses text nested deeper than kMaxJsonDepth or with more than kMaxJsonValues values, without
// parsing it. Strings are skipped (with their escapes), so brackets inside them do not count.
Expected<void, std::string> check_json_shape(std::string_view text) {
  int depth = 0;
  size_t values = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > kMaxJsonDepth) {
          return unexpected("the message nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        }
        [[fallthrough]];
      case ',':
      case ':':
        if (++values > kMaxJsonValues) {
          return unexpected("the message has more than " + std::to_string(kMaxJsonValues) + " values");
        }
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return {};
}

#define KG_FIELD(out, expr)                 \
  do {                                      \
    auto kg_field_ = (expr);                \
    if (!kg_field_) {                       \
      return unexpected(kg_field_.error()); \
    }                                       \
    (out) = std::move(*kg_field_);          \
  } while (false)

Expected<Response, std::string> response_from_json(const json& j) {
  std::string type;
  KG_FIELD(type, required<std::string>(j, "type"));
  if (type == "hello") {
    Hello h;
    KG_FIELD(h.program, required<std::string>(j, "program"));
    int64_t protocol = 0;
    KG_FIELD(protocol, required<int64_t>(j, "protocol"));
    h.protocol = static_cast<int>(protocol);
    KG_FIELD(h.version, field<std::string>(j, "version", ""));
    KG_FIELD(h.generator, field<std::string>(j, "generator", ""));
    KG_FIELD(h.verifier, field<std::string>(j, "verifier", ""));
    KG_FIELD(h.config, field<std::string>(j, "config", ""));
    KG_FIELD(h.pid, field<int64_t>(j, "pid", 0));
    return Response{h};
  }
  if (type == "progress") {
    Progress p;
    KG_FIELD(p.key, field<std::string>(j, "key", ""));
    KG_FIELD(p.stage, required<std::string>(j, "stage"));
    KG_FIELD(p.message, field<std::string>(j, "message", ""));
    KG_FIELD(p.elapsed_ms, field<int64_t>(j, "elapsed_ms", 0));
    return Response{p};
  }
  if (type == "result") {
    Result r;
    KG_FIELD(r.ok, required<bool>(j, "ok"));
    KG_FIELD(r.key, field<std::string>(j, "key", ""));
    KG_FIELD(r.name, field<std::string>(j, "name", ""));
    std::string outcome;
    KG_FIELD(outcome, field<std::string>(j, "outcome", ""));
    KG_FIELD(r.outcome, parse_outcome(outcome));
    std::string verification;
    KG_FIELD(verification, field<std::string>(j, "verification", ""));
    KG_FIELD(r.verification, parse_verification_field(verification));
    KG_FIELD(r.error, field<std::string>(j, "error", ""));
    if (r.ok && r.key.empty()) {
      return unexpected(std::string("a successful result without a key"));
    }
    return Response{r};
  }
  if (type == "status") {
    Status s;
    KG_FIELD(s.pid, field<int64_t>(j, "pid", 0));
    KG_FIELD(s.version, field<std::string>(j, "version", ""));
    int64_t protocol = 0;
    KG_FIELD(protocol, field<int64_t>(j, "protocol", 0));
    s.protocol = static_cast<int>(protocol);
    KG_FIELD(s.config, field<std::string>(j, "config", ""));
    KG_FIELD(s.cache_dir, field<std::string>(j, "cache_dir", ""));
    KG_FIELD(s.socket, field<std::string>(j, "socket", ""));
    KG_FIELD(s.log, field<std::string>(j, "log", ""));
    KG_FIELD(s.uptime_s, field<double>(j, "uptime_s", 0));
    KG_FIELD(s.idle_timeout_s, field<int64_t>(j, "idle_timeout_s", 0));
    KG_FIELD(s.jobs_limit, field<int64_t>(j, "jobs_limit", 0));
    KG_FIELD(s.active_jobs, field<int64_t>(j, "active_jobs", 0));
    KG_FIELD(s.connections, field<int64_t>(j, "connections", 0));
    KG_FIELD(s.draining, field<bool>(j, "draining", false));
    KG_FIELD(s.storage, field<std::string>(j, "storage", ""));
    return Response{s};
  }
  if (type == "stats") {
    Stats s;
    KG_FIELD(s.uptime_s, field<double>(j, "uptime_s", 0));
    KG_FIELD(s.requests, field<int64_t>(j, "requests", 0));
    KG_FIELD(s.generate_requests, field<int64_t>(j, "generate_requests", 0));
    KG_FIELD(s.cache_hits, field<int64_t>(j, "cache_hits", 0));
    KG_FIELD(s.generations, field<int64_t>(j, "generations", 0));
    KG_FIELD(s.joins, field<int64_t>(j, "joins", 0));
    KG_FIELD(s.failures, field<int64_t>(j, "failures", 0));
    KG_FIELD(s.active_jobs, field<int64_t>(j, "active_jobs", 0));
    KG_FIELD(s.connections, field<int64_t>(j, "connections", 0));
    KG_FIELD(s.protocol_errors, field<int64_t>(j, "protocol_errors", 0));
    return Response{s};
  }
  if (type == "shutdown") {
    ShutdownAck a;
    KG_FIELD(a.active_jobs, field<int64_t>(j, "active_jobs", 0));
    return Response{a};
  }
  if (type == "error") {
    Error e;
    std::string code;
    KG_FIELD(code, required<std::string>(j, "code"));
    KG_FIELD(e.code, parse_error_code(code));
    KG_FIELD(e.message, field<std::string>(j, "message", ""));
    KG_FIELD(e.connections, field<int64_t>(j, "connections", 0));
    return Response{e};
  }
  return unexpected("unknown response type '" + printable(type.substr(0, 64)) + "'");
}

Expected<Request, Error> request_from_json(const json& j) {
  auto bad = [](std::string message) { return unexpected(Error{ErrorCode::BadRequest, std::move(message)}); };
  auto type = required<std::string>(j, "type");
  if (!type) {
    return bad(type.error());
  }
  if (*type == "generate") {
    GenerateRequest g;
    auto spec = required<std::string>(j, "spec");
    auto file = field<std::string>(j, "file", "");
    auto arch = field<std::string>(j, "arch", "");
    if (!spec || !file || !arch) {
      return bad(!spec ? spec.error() : !file ? file.error() : arch.error());
    }
    g.spec = std::move(*spec);
    g.file = std::move(*file);
    g.arch = std::move(*arch);
    if (auto it = j.find("options"); it != j.end()) {
      if (!it->is_object()) {
        return bad(std::string("field 'options' must be an object, not ") + it->type_name());
      }
      auto verify = field<bool>(*it, "verify", true);
      if (!verify) {
        return bad("options: " + verify.error());
      }
      g.verify = *verify;
      if (auto b = it->find("budget_s"); b != it->end()) {
        if (!b->is_number()) {
          return bad(std::string("options: field 'budget_s' must be a number, not ") + b->type_name());
        }
        const double budget = b->get<double>();
        if (!(budget == -1 || (budget >= 0 && budget <= 1e7))) {
          return bad("options: field 'budget_s' must be -1 (the daemon's default) or 0 to 10000000 seconds, not " +
                     b->dump());
        }
        g.budget_s = budget;
      }
    }
    return Request{std::move(g)};
  }
  if (*type == "status") {
    return Request{StatusRequest{}};
  }
  if (*type == "stats") {
    return Request{StatsRequest{}};
  }
  if (*type == "shutdown") {
    return Request{ShutdownRequest{}};
  }
  // The type is echoed: at most 64 bytes of it, control bytes escaped.
  return unexpected(Error{ErrorCode::UnknownRequest, "unknown request type '" + printable(type->substr(0, 64)) +
                                                         "' (expected generate, status, stats or shutdown)"});
}

}  // namespace

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::None:
      return "";
    case Outcome::CacheHit:
      return "cache_hit";
    case Outcome::Generated:
      return "generated";
    case Outcome::Joined:
      return "joined";
  }
  return "";
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::FrameEmpty:
      return "frame_empty";
    case ErrorCode::FrameTooLarge:
      return "frame_too_large";
    case ErrorCode::BadJson:
      return "bad_json";
    case ErrorCode::BadRequest:
      return "bad_request";
    case ErrorCode::UnknownRequest:
      return "unknown_request";
    case ErrorCode::Draining:
      return "draining";
    case ErrorCode::Busy:
      return "busy";
  }
  return "?";
}

std::string encode(const Request& request) {
  json j = std::visit(Overloaded{
                          [](const GenerateRequest& g) {
                            return json{{"type", "generate"},
                                        {"spec", g.spec},
                                        {"file", g.file},
                                        {"arch", g.arch},
                                        {"options", {{"verify", g.verify}, {"budget_s", g.budget_s}}}};
                          },
                          [](const StatusRequest&) {
                            return json{{"type", "status"}};
                          },
                          [](const StatsRequest&) {
                            return json{{"type", "stats"}};
                          },
                          [](const ShutdownRequest&) {
                            return json{{"type", "shutdown"}};
                          },
                      },
                      request);
  // Replacement of invalid UTF-8 (a spec file is user data) instead of an exception.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string encode(const Response& response) {
  json j = std::visit(
      Overloaded{
          [](const Hello& h) {
            return json{{"type", "hello"},          {"program", h.program},
                        {"protocol", h.protocol},   {"version", h.version},
                        {"generator", h.generator}, {"verifier", h.verifier},
                        {"config", h.config},       {"pid", h.pid}};
          },
          [](const Progress& p) {
            return json{{"type", "progress"},
                        {"key", p.key},
                        {"stage", p.stage},
                        {"message", p.message},
                        {"elapsed_ms", p.elapsed_ms}};
          },
          [](const Result& r) {
            return json{{"type", "result"},
                        {"ok", r.ok},
                        {"key", r.key},
                        {"name", r.name},
                        {"outcome", outcome_name(r.outcome)},
                        {"verification", cache::verification_name(r.verification)},
                        {"error", r.error}};
          },
          [](const Status& s) {
            return json{{"type", "status"},
                        {"pid", s.pid},
                        {"version", s.version},
                        {"protocol", s.protocol},
                        {"config", s.config},
                        {"cache_dir", s.cache_dir},
                        {"socket", s.socket},
                        {"log", s.log},
                        {"uptime_s", s.uptime_s},
                        {"idle_timeout_s", s.idle_timeout_s},
                        {"jobs_limit", s.jobs_limit},
                        {"active_jobs", s.active_jobs},
                        {"connections", s.connections},
                        {"draining", s.draining},
                        {"storage", s.storage}};
          },
          [](const Stats& s) {
            return json{{"type", "stats"},
                        {"uptime_s", s.uptime_s},
                        {"requests", s.requests},
                        {"generate_requests", s.generate_requests},
                        {"cache_hits", s.cache_hits},
                        {"generations", s.generations},
                        {"joins", s.joins},
                        {"failures", s.failures},
                        {"active_jobs", s.active_jobs},
                        {"connections", s.connections},
                        {"protocol_errors", s.protocol_errors}};
          },
          [](const ShutdownAck& a) {
            return json{{"type", "shutdown"}, {"ok", true}, {"active_jobs", a.active_jobs}};
          },
          [](const Error& e) {
            json j{{"type", "error"}, {"code", error_code_name(e.code)}, {"message", e.message}};
            if (e.connections > 0) {
              j["connections"] = e.connections;
            }
            return j;
          },
      },
      response);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Expected<Request, Error> parse_request(std::string_view text) {
  if (auto shape = check_json_shape(text); !shape) {
    return unexpected(Error{ErrorCode::BadJson, shape.error()});
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return unexpected(Error{ErrorCode::BadJson, j.is_discarded() ? "the message is not JSON"
                                                                 : "the message is not a JSON object"});
  }
  return request_from_json(j);
}

Expected<Response, Failure> parse_response(std::string_view text) {
  if (auto shape = check_json_shape(text); !shape) {
    return fail("the daemon sent a message that is too complex: " + shape.error());
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return fail("the daemon sent a message that is not a JSON object");
  }
  auto r = response_from_json(j);
  if (!r) {
    return fail("the daemon sent a malformed message: " + r.error());
  }
  return std::move(*r);
}

}  // namespace kg::protocol
