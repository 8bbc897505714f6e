#include "loop/answer.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <vector>

#include "verify/static_check.h"

namespace kg::loop {

namespace {

// One fenced code block of the answer.
struct Block {
  std::string info;      // the whole info string, trimmed
  std::string language;  // its first word
  std::string text;      // the lines between the fences, each ended by '\n'
  int open_line = 0;     // 1-based line of the opening fence (in the answer without its thinking)
  int depth = 0;         // 0: top level; 1: inside another block (a ```cuda inside a ```markdown)
  int parent = -1;       // index of the enclosing block, -1 at top level
  bool closed = false;
};

// The answer without its <think>…</think> parts: every complete pair is cut out; a <think>
// never closed runs to the end (the answer is all thinking); a </think> before any <think> (the
// server put the opening tag into the prompt) ends thinking that began with the answer.
std::string strip_thinking(std::string_view content) {
  constexpr std::string_view kOpen = "<think>", kClose = "</think>";
  std::string out;
  size_t pos = 0;
  const size_t first_close = content.find(kClose);
  const size_t first_open = content.find(kOpen);
  if (first_close != std::string_view::npos && (first_open == std::string_view::npos || first_close < first_open)) {
    pos = first_close + kClose.size();
  }
  while (pos < content.size()) {
    const size_t open = content.find(kOpen, pos);
    if (open == std::string_view::npos) {
      out.append(content.substr(pos));
      break;
    }
    out.append(content.substr(pos, open - pos));
    const size_t close = content.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos) {
      break;
    }
    pos = close + kClose.size();
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) {
    return {};
  }
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// A fence line: optional indentation, then 3 or more backticks or tildes, then the info string.
struct Fence {
  char ch = 0;
  size_t count = 0;
  size_t indent = 0;  // columns of indentation (a tab counts as one)
  std::string info;   // trimmed
};

std::optional<Fence> fence_of(std::string_view line) {
  Fence f;
  f.indent = std::min(line.find_first_not_of(" \t"), line.size());
  std::string_view rest = line.substr(f.indent);
  if (rest.empty() || (rest[0] != '`' && rest[0] != '~')) {
    return std::nullopt;
  }
  f.ch = rest[0];
  while (f.count < rest.size() && rest[f.count] == f.ch) {
    ++f.count;
  }
  if (f.count < 3) {
    return std::nullopt;
  }
  const std::string_view info = trim(rest.substr(f.count));
  // ```int x``` on one line is inline code, not a fence (CommonMark: no backtick in the info).
  if (f.ch == '`' && info.find('`') != std::string_view::npos) {
    return std::nullopt;
  }
  f.info = std::string(info);
  return f;
}

// The info string's first word, without pandoc's `{.cuda}` dressing.
std::string language_of(const std::string& info) {
  std::string_view w(info);
  while (!w.empty() && (w.front() == '{' || w.front() == '.')) {
    w.remove_prefix(1);
  }
  return std::string(w.substr(0, std::min(w.find_first_of(" \t{},"), w.size())));
}

// A block that may hold blocks of its own: prose-like languages.
bool is_wrapper(const std::string& lang) {
  const std::string l = lower(lang);
  return l.empty() || l == "markdown" || l == "md" || l == "text" || l == "txt";
}

// Every fenced block of `text`, in order of their opening fences. Inside an open block a fence of
// the same character with an info string opens a nested block when the open one is prose-like
// (models put a ```cuda block inside a ```markdown one), one level deep at most (deeper, or in a
// code block, such a line is content, as in CommonMark); a bare fence at least as long
// as the innermost opener closes it.
std::vector<Block> fenced_blocks(std::string_view text) {
  std::vector<Block> blocks;
  struct Open {
    size_t block;
    Fence fence;
  };
  std::vector<Open> stack;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    const std::optional<Fence> f = fence_of(line);
    if (stack.empty()) {
      if (f) {
        Block b;
        b.info = f->info;
        b.language = language_of(f->info);
        b.open_line = line_no;
        blocks.push_back(std::move(b));
        stack.push_back({blocks.size() - 1, *f});
      }
      continue;
    }
    const Open& top = stack.back();
    if (f && f->ch == top.fence.ch && f->info.empty() && f->count >= top.fence.count) {
      blocks[top.block].closed = true;
      stack.pop_back();
      if (!stack.empty()) {
        blocks[stack.back().block].text.append(line).append("\n");
      }
      continue;
    }
    if (f && stack.size() == 1 && f->ch == top.fence.ch && !f->info.empty() && is_wrapper(blocks[top.block].language)) {
      // A nested opener: the line belongs to the outer block's text as well.
      for (const Open& o : stack) {
        blocks[o.block].text.append(line).append("\n");
      }
      Block b;
      b.info = f->info;
      b.language = language_of(f->info);
      b.open_line = line_no;
      b.depth = static_cast<int>(stack.size());
      b.parent = static_cast<int>(top.block);
      blocks.push_back(std::move(b));
      stack.push_back({blocks.size() - 1, *f});
      continue;
    }
    // A content line: indentation up to the opening fence's is removed (CommonMark).
    for (const Open& o : stack) {
      std::string_view content = line;
      size_t drop = 0;
      while (drop < o.fence.indent && drop < content.size() && (content[drop] == ' ' || content[drop] == '\t')) {
        ++drop;
      }
      content.remove_prefix(drop);
      while (!content.empty() && content.back() == '\r') {  // CRLF (and stray CRs before it)
        content.remove_suffix(1);
      }
      blocks[o.block].text.append(content).append("\n");
    }
  }
  return blocks;
}

bool is_python_language(const std::string& lang) {
  static const char* const k[] = {"python", "python3", "py", "triton", "torch", "pytorch", "ipython", "pycon"};
  const std::string l = lower(lang);
  return std::any_of(std::begin(k), std::end(k), [&](const char* name) { return l == name; });
}

bool is_c_language(const std::string& lang) {
  static const char* const k[] = {"", "cuda", "cu", "cuh", "cpp", "c++", "cxx", "cc", "c", "h", "hpp", "hxx", "nvcc"};
  const std::string l = lower(lang);
  return std::any_of(std::begin(k), std::end(k), [&](const char* name) { return l == name; });
}

// Mentions of the entry point looked at (a hostile block may repeat it a million times).
constexpr size_t kMaxEntryMentions = 64;

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Positions of `word` in `code` as a whole identifier.
std::vector<size_t> identifier_positions(const std::string& code, std::string_view word) {
  std::vector<size_t> out;
  if (word.empty()) {
    return out;
  }
  for (size_t i = code.find(word); i != std::string::npos; i = code.find(word, i + 1)) {
    const bool start = i == 0 || !ident_char(code[i - 1]);
    const bool end = i + word.size() >= code.size() || !ident_char(code[i + word.size()]);
    if (start && end) {
      out.push_back(i);
    }
  }
  return out;
}

// Python, Triton and PyTorch markers found in `code` (comment- and literal-free), in a fixed
// order, each at most once. `def ` at the start of a line counts only when `python_defs`.
std::vector<std::string> python_markers(const std::string& code, bool python_defs) {
  static const char* const kLineStart[] = {"import triton", "from triton", "import torch", "from torch",
                                           "@triton.jit",   "@triton.autotune", "import numpy", "#include <torch/"};
  static const char* const kAnywhere[] = {"tl.load(", "tl.store(", "tl.dot(", "triton.language", "tl.program_id("};
  std::vector<std::string> found;
  auto add = [&](const std::string& m) {
    if (std::find(found.begin(), found.end(), m) == found.end()) {
      found.push_back(m);
    }
  };
  size_t pos = 0;
  while (pos < code.size()) {
    size_t end = code.find('\n', pos);
    if (end == std::string::npos) {
      end = code.size();
    }
    std::string_view line(code.data() + pos, end - pos);
    line.remove_prefix(std::min(line.find_first_not_of(" \t"), line.size()));
    for (const char* m : kLineStart) {
      const std::string_view mv(m);
      if (line.substr(0, mv.size()) == mv &&
          (line.size() == mv.size() || !ident_char(line[mv.size()]) || mv.back() == '/')) {
        add(m);
      }
    }
    if (python_defs && line.substr(0, 4) == "def " && line.find(':') != std::string_view::npos) {
      add("def ");
    }
    pos = end + 1;
  }
  for (const char* m : kAnywhere) {
    if (code.find(m) != std::string::npos) {
      add(std::string(m).substr(0, std::string(m).find('(')));
    }
  }
  return found;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < 3; ++i) {
    s += (i ? ", '" : "'") + items[i] + "'";
  }
  return s;
}

size_t skip_space(const std::string& code, size_t p) {
  while (p < code.size() && std::isspace(static_cast<unsigned char>(code[p]))) {
    ++p;
  }
  return p;
}

// After the identifier at [i, e): a definition's body (`(…) … {`) → 1, a declaration (`;`) → 0,
// anything else (a call, an address) → -1. Between `)` and `{` qualifiers and attributes
// (`noexcept`, `__attribute__((…))`) are skipped.
int declarator_kind(const std::string& code, size_t e) {
  size_t p = skip_space(code, e);
  if (p >= code.size() || code[p] != '(') {
    return -1;
  }
  auto skip_parens = [&](size_t q) {
    int depth = 0;
    for (; q < code.size(); ++q) {
      depth += code[q] == '(' ? 1 : code[q] == ')' ? -1 : 0;
      if (depth == 0) {
        return q + 1;
      }
    }
    return code.size();
  };
  p = skip_space(code, skip_parens(p));
  for (int guard = 0; guard < 16 && p < code.size(); ++guard) {
    if (ident_char(code[p])) {
      while (p < code.size() && ident_char(code[p])) {
        ++p;
      }
    } else if (code[p] == '(') {
      p = skip_parens(p);
    } else {
      break;
    }
    p = skip_space(code, p);
  }
  if (p < code.size() && code[p] == '{') {
    return 1;
  }
  if (p < code.size() && code[p] == ';') {
    return 0;
  }
  return -1;
}

bool ends_with_extern_c(const std::string& code, size_t before) {
  constexpr std::string_view kExternC = "extern \"C\"";
  size_t p = before;
  while (p > 0 && std::isspace(static_cast<unsigned char>(code[p - 1]))) {
    --p;
  }
  return p >= kExternC.size() && code.compare(p - kExternC.size(), kExternC.size(), kExternC) == 0;
}

// True when the declaration at `pos` has C linkage: `extern "C"` in its own declaration (since
// the previous `;`, `{` or `}`) or an enclosing `extern "C" { … }` block.
bool has_c_linkage(const std::string& code, size_t pos) {
  size_t start = pos;
  while (start > 0 && code[start - 1] != ';' && code[start - 1] != '{' && code[start - 1] != '}') {
    --start;
  }
  if (code.substr(start, pos - start).find("extern \"C\"") != std::string::npos) {
    return true;
  }
  std::vector<bool> open;  // per open brace: is it an extern "C" block?
  for (size_t i = 0; i < pos; ++i) {
    if (code[i] == '{') {
      open.push_back(ends_with_extern_c(code, i));
    } else if (code[i] == '}' && !open.empty()) {
      open.pop_back();
    }
  }
  return std::find(open.begin(), open.end(), true) != open.end();
}

std::string prototype(std::string_view entry) {
  return "extern \"C\" cudaError_t " + std::string(entry) + "(const KgAttentionArgs* args, cudaStream_t stream)";
}

// The checks on the chosen block's text; "" when it is a candidate.
std::string content_problem(const Block& block, std::string_view entry) {
  const std::string code = verify::strip_comments_and_literals(block.text);
  const bool has_global = code.find("__global__") != std::string::npos;
  const bool cuda_like = has_global || code.find("extern \"C\"") != std::string::npos ||
                         code.find("__device__") != std::string::npos ||
                         code.find("#include <cuda") != std::string::npos ||
                         !identifier_positions(code, entry).empty();
  if (is_python_language(block.language)) {
    return "the final code block is marked `" + block.language +
           "`, not CUDA C++: the kernel must be one CUDA C++ .cu file in a ```cuda block (no Triton, no PyTorch, "
           "no Python)";
  }
  const std::vector<std::string> markers = python_markers(code, !has_global);
  if (!markers.empty() && !cuda_like) {
    return "the block is Python (found " + quoted_list(markers) +
           "), not CUDA C++: write the kernel as one CUDA C++ .cu file (no Triton, no PyTorch)";
  }
  if (!markers.empty()) {
    return "the block mixes CUDA C++ with Python/Triton/PyTorch (found " + quoted_list(markers) +
           "): the .cu must be CUDA C++ only, compiled by nvcc against the CUDA runtime";
  }
  if (!is_c_language(block.language) && !cuda_like) {
    return "the final code block is marked `" + block.language +
           "` and holds no CUDA C++: put the whole .cu in one ```cuda block";
  }
  // A definition has C linkage when it says so, or when an earlier declaration did.
  bool declared = false, declared_c = false, defined_without_c = false;
  // (a bounded number of mentions: each costs a scan of the text before it)
  std::vector<size_t> mentions = identifier_positions(code, entry);
  if (mentions.size() > kMaxEntryMentions) {
    mentions.resize(kMaxEntryMentions);
  }
  for (size_t pos : mentions) {
    const int kind = declarator_kind(code, pos + entry.size());
    if (kind == 1) {
      if (declared_c || has_c_linkage(code, pos)) {
        return "";
      }
      defined_without_c = true;
    } else if (kind == 0) {
      declared = true;
      declared_c = declared_c || has_c_linkage(code, pos);
    }
  }
  if (defined_without_c) {
    return "the code defines " + std::string(entry) +
           " without C linkage: write it as `" + prototype(entry) + " { ... }` (or inside an extern \"C\" { } block)";
  }
  if (declared) {
    return "the code declares " + std::string(entry) + " but does not define it: the file must contain `" +
           prototype(entry) + " { ... }` with its body";
  }
  return "the code does not define extern \"C\" " + std::string(entry) + ": the file must contain `" +
         prototype(entry) + " { ... }`";
}

}  // namespace

Expected<ParsedAnswer, Failure> parse_answer(std::string_view content, std::string_view entry) {
  const std::string text = strip_thinking(content);
  const std::vector<Block> blocks = fenced_blocks(text);
  ParsedAnswer out;
  out.blocks = static_cast<int>(std::count_if(blocks.begin(), blocks.end(), [](const Block& b) { return b.depth == 0; }));
  if (blocks.empty()) {
    return fail("the answer has no fenced code block: put the whole .cu in one ```cuda block");
  }
  // The final top-level block, unless it is a prose wrapper around blocks of its own (```markdown
  // around ```cuda): then the last block inside it.
  size_t chosen = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (blocks[i].depth == 0) {
      chosen = i;
    }
  }
  if (!blocks[chosen].closed) {
    return fail("the answer's final code block (opened on line " + std::to_string(blocks[chosen].open_line) +
                ") is never closed: the answer may have been cut off; end the .cu with a closing ``` line");
  }
  if (is_wrapper(blocks[chosen].language)) {
    for (size_t i = chosen + 1; i < blocks.size(); ++i) {
      if (blocks[i].parent == static_cast<int>(chosen) && blocks[i].closed) {
        chosen = i;
      }
    }
  }
  // A trailing snippet that is not the kernel (a ```bash line to compile it, a Python check):
  // the kernel is then the last block that names the entry point.
  if (identifier_positions(verify::strip_comments_and_literals(blocks[chosen].text), entry).empty()) {
    for (size_t i = blocks.size(); i-- > 0;) {
      if (i != chosen && blocks[i].closed && !is_python_language(blocks[i].language) &&
          blocks[i].text.size() <= kMaxSourceBytes &&
          !identifier_positions(verify::strip_comments_and_literals(blocks[i].text), entry).empty()) {
        chosen = i;
        break;
      }
    }
  }
  const Block& block = blocks[chosen];
  if (block.text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return fail("the answer's final code block is empty: put the whole .cu in it");
  }
  if (block.text.size() > kMaxSourceBytes) {
    return fail("the final code block is " + std::to_string(block.text.size()) + " bytes, more than the " +
                std::to_string(kMaxSourceBytes) + " accepted for one .cu");
  }
  if (std::string problem = content_problem(block, entry); !problem.empty()) {
    return fail(std::move(problem));
  }
  out.source = block.text;
  out.language = block.language;
  return out;
}

}  // namespace kg::loop
