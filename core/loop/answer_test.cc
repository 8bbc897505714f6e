#include "loop/answer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kg::loop {
namespace {

constexpr const char* kEntry = "kg_causal_forward";

// A small but well-formed candidate.
const std::string kKernel =
    "#include <kernelgen/attention_abi.h>\n"
    "\n"
    "__global__ void attn(const KgAttentionArgs a) {}\n"
    "\n"
    "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {\n"
    "  if (args == nullptr) return cudaErrorInvalidValue;\n"
    "  attn<<<1, 128, 0, stream>>>(*args);\n"
    "  return cudaGetLastError();\n"
    "}\n";

std::string block(const std::string& info, const std::string& body, const std::string& fence = "```") {
  return fence + info + "\n" + body + fence + "\n";
}

std::string error_of(std::string_view content, std::string_view entry = kEntry) {
  auto r = parse_answer(content, entry);
  return r ? std::string("(accepted)") : r.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

#define EXPECT_ERROR(content, part)                                            \
  do {                                                                         \
    const std::string e_ = error_of(content);                                  \
    EXPECT_TRUE(contains(e_, part)) << "error: " << e_ << "\nwanted: " << (part); \
  } while (false)

TEST(LoopAnswer, AcceptsOneCudaBlock) {
  auto r = parse_answer("Here is the kernel.\n\n" + block("cuda", kKernel) + "\nDone.\n", kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  EXPECT_EQ(r->language, "cuda");
  EXPECT_EQ(r->blocks, 1);
}

TEST(LoopAnswer, AcceptsCppCuAndBareInfoStrings) {
  for (const char* info : {"cpp", "c++", "cu", "", "CUDA", " cuda ", "{.cuda}", "cuda title=kernel.cu"}) {
    auto r = parse_answer(block(info, kKernel), kEntry);
    ASSERT_TRUE(r) << "info `" << info << "`: " << r.error().message;
    EXPECT_EQ(r->source, kKernel);
  }
  auto r = parse_answer(block("cuda title=kernel.cu", kKernel), kEntry);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->language, "cuda");
}

TEST(LoopAnswer, TakesTheFinalBlock) {
  const std::string draft = "// draft\n" + kKernel;
  const std::string final_version = "// final\n" + kKernel;
  auto r = parse_answer("First:\n" + block("cuda", draft) + "Better:\n" + block("cuda", final_version), kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, final_version);
  EXPECT_EQ(r->blocks, 2);
}

TEST(LoopAnswer, TrailingSnippetWithoutTheEntryIsNotTheKernel) {
  // A compile command after the kernel: the kernel is the last block that names the entry.
  auto r = parse_answer(block("cuda", kKernel) + "Build it with:\n" + block("bash", "nvcc -arch=sm_90a -shared k.cu\n"),
                        kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  EXPECT_EQ(r->blocks, 2);
}

TEST(LoopAnswer, StripsThinking) {
  const std::string decoy = "#include <cuda_runtime.h>\n// no entry here\n";
  auto r = parse_answer("<think>Let me try:\n" + block("cuda", decoy) + "</think>\n" + block("cuda", kKernel), kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  EXPECT_EQ(r->blocks, 1);
  // Thinking whose opening tag the server put into the prompt: everything up to </think> goes.
  r = parse_answer("so the tile is 128 wide\n" + block("python", "import torch\n") + "</think>\n" + block("cuda", kKernel),
                   kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->blocks, 1);
  // Thinking never closed: the whole answer is thinking, there is no code.
  EXPECT_ERROR("<think>\n" + block("cuda", kKernel), "no fenced code block");
}

TEST(LoopAnswer, TildeFencesAndIndentation) {
  auto r = parse_answer(block("cuda", kKernel, "~~~"), kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  // A block indented inside a list item: the fence's indentation is removed from its lines.
  std::string indented = "1. The kernel:\n\n   ```cuda\n";
  size_t pos = 0;
  while (pos < kKernel.size()) {
    size_t end = kKernel.find('\n', pos);
    indented += (end == pos ? "" : "   ") + kKernel.substr(pos, end - pos) + "\n";
    pos = end + 1;
  }
  indented += "   ```\n";
  r = parse_answer(indented, kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  // CRLF line ends.
  std::string crlf;
  for (char c : block("cuda", kKernel)) {
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  }
  r = parse_answer(crlf, kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  // Several CRs before a line's end go with it (found by fuzz_answer: the source must read back
  // the same when wrapped in a block again).
  r = parse_answer("```cuda\n" + kKernel.substr(0, kKernel.size() - 1) + "\r\r\r\n```\n", kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
}

TEST(LoopAnswer, LongerFenceHoldsShorterOnes) {
  // A ```` block may contain ``` lines; a ```cuda inside a ```markdown block is taken from it.
  auto r = parse_answer("````cuda\n// a ``` in a comment\n```\n" + kKernel + "````\n", kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, "// a ``` in a comment\n```\n" + kKernel);
  r = parse_answer("```markdown\nThe file:\n```cuda\n" + kKernel + "```\n```\n", kEntry);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->source, kKernel);
  EXPECT_EQ(r->blocks, 1);
  // ```int x``` is inline code, not a fence.
  EXPECT_ERROR("Use ```int x``` here.\n", "no fenced code block");
}

TEST(LoopAnswer, NoBlock) {
  EXPECT_EQ(error_of("I would write a kernel that tiles q by 128 rows."),
            "the answer has no fenced code block: put the whole .cu in one ```cuda block");
  EXPECT_ERROR("", "no fenced code block");
  EXPECT_ERROR("inline ``` fences ``` in prose are no block", "no fenced code block");
}

TEST(LoopAnswer, UnterminatedFinalBlock) {
  EXPECT_ERROR("```cuda\n" + kKernel, "never closed");
  // Even after a complete block: the answer was cut off while writing the final one.
  EXPECT_ERROR(block("cuda", kKernel) + "Improved:\n```cuda\n" + kKernel.substr(0, 40), "opened on line 13");
}

TEST(LoopAnswer, EmptyBlock) {
  EXPECT_ERROR("```cuda\n```\n", "final code block is empty");
  EXPECT_ERROR("```cuda\n  \n\t\n```\n", "final code block is empty");
}

TEST(LoopAnswer, PythonByLanguage) {
  for (const char* info : {"python", "py", "triton", "torch", "Python"}) {
    const std::string e = error_of(block(info, kKernel));
    EXPECT_TRUE(contains(e, "marked `" + std::string(info) + "`, not CUDA C++")) << e;
  }
}

TEST(LoopAnswer, PythonByContent) {
  const std::string triton =
      "import triton\nimport triton.language as tl\n\n@triton.jit\ndef attn(Q, K, V):\n    q = tl.load(Q)\n";
  EXPECT_EQ(error_of(block("", triton)),
            "the block is Python (found 'import triton', '@triton.jit', 'def '), not CUDA C++: write the kernel as one "
            "CUDA C++ .cu file (no Triton, no PyTorch)");
  EXPECT_ERROR(block("cuda", "import torch\n\ndef forward(q, k, v):\n    return torch.softmax(q @ k.T, -1) @ v\n"),
               "the block is Python (found 'import torch'");
  EXPECT_ERROR(block("cpp", "def kernel(x):\n    return x\n"), "the block is Python (found 'def ')");
}

TEST(LoopAnswer, MixedCudaAndPython) {
  EXPECT_ERROR(block("cuda", "import torch\n" + kKernel), "mixes CUDA C++ with Python/Triton/PyTorch (found 'import torch')");
  EXPECT_ERROR(block("cuda", "#include <torch/extension.h>\n" + kKernel), "mixes CUDA C++");
  // Markers in comments and strings are prose, not code.
  auto r = parse_answer(block("cuda", "// unlike import torch, this is CUDA; tl.load( would be Triton\n" +
                                          std::string("const char* k = \"import triton\";\n") + kKernel),
                        kEntry);
  EXPECT_TRUE(r) << r.error().message;
  // `def ` at a line start counts only where there is no __global__ (a macro body may say def).
  r = parse_answer(block("cuda", "#define X \\\ndef \n" + kKernel), kEntry);
  EXPECT_TRUE(r) << r.error().message;
}

TEST(LoopAnswer, OtherLanguageWithoutCuda) {
  EXPECT_ERROR(block("json", "{\"a\": 1}\n"), "marked `json` and holds no CUDA C++");
}

TEST(LoopAnswer, EntryMissing) {
  EXPECT_EQ(error_of(block("cuda", "__global__ void k() {}\n")),
            "the code does not define extern \"C\" kg_causal_forward: the file must contain `extern \"C\" cudaError_t "
            "kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) { ... }`");
  // Another spec's entry, or the name only in a comment or a string, is no definition.
  auto r = parse_answer(block("cuda", kKernel), "kg_relpos_forward");
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message, "does not define extern \"C\" kg_relpos_forward")) << r.error().message;
  EXPECT_ERROR(block("cuda", "// kg_causal_forward goes here\n__global__ void k() {}\n"), "does not define");
  // A longer name that contains the entry is not the entry.
  EXPECT_ERROR(block("cuda", "extern \"C\" cudaError_t kg_causal_forward2(const KgAttentionArgs* a, cudaStream_t s) { return cudaSuccess; }\n"),
               "does not define");
}

TEST(LoopAnswer, EntryDeclaredOnly) {
  EXPECT_ERROR(block("cuda",
                     "#include <kernelgen/attention_abi.h>\n"
                     "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream);\n"),
               "declares kg_causal_forward but does not define it");
}

TEST(LoopAnswer, EntryWithoutCLinkage) {
  EXPECT_ERROR(block("cuda", "cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {\n"
                             "  return cudaSuccess;\n}\n"),
               "defines kg_causal_forward without C linkage");
  // extern "C" elsewhere in the file (on another function, or a closed block) does not count.
  EXPECT_ERROR(block("cuda", "extern \"C\" { int helper() { return 0; } }\n"
                             "extern \"C\" int other(void);\n"
                             "cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {\n"
                             "  return cudaSuccess;\n}\n"),
               "without C linkage");
}

TEST(LoopAnswer, EntryInsideExternCBlock) {
  auto r = parse_answer(block("cuda",
                              "#include <kernelgen/attention_abi.h>\n"
                              "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
                              "cudaError_t kg_causal_forward(const KgAttentionArgs* args, cudaStream_t stream) {\n"
                              "  if (args) { return cudaSuccess; }\n  return cudaErrorInvalidValue;\n}\n"
                              "#ifdef __cplusplus\n}\n#endif\n"),
                        kEntry);
  EXPECT_TRUE(r) << r.error().message;
  // Qualifiers between the parameters and the body.
  r = parse_answer(block("cuda", "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t s) "
                                 "noexcept __attribute__((visibility(\"default\"))) { return cudaSuccess; }\n"),
                   kEntry);
  EXPECT_TRUE(r) << r.error().message;
}

TEST(LoopAnswer, DefinitionAfterAnExternCDeclaration) {
  // C++ gives the definition the linkage of the earlier declaration.
  auto r = parse_answer(block("cuda", "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t s);\n"
                                      "cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t s) {\n"
                                      "  return cudaSuccess;\n}\n"),
                        kEntry);
  EXPECT_TRUE(r) << r.error().message;
  // A declaration after the definition does not help it.
  EXPECT_ERROR(block("cuda", "cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t s) {\n"
                             "  return cudaSuccess;\n}\n"
                             "extern \"C\" cudaError_t kg_causal_forward(const KgAttentionArgs* a, cudaStream_t s);\n"),
               "without C linkage");
}

TEST(LoopAnswer, TooLarge) {
  std::string big = kKernel;
  while (big.size() <= kMaxSourceBytes) {
    big += "// padding padding padding padding padding padding padding padding padding padding\n";
  }
  EXPECT_ERROR(block("cuda", big), "more than the 524288 accepted");
}

// splitmix64: a fixed-seed generator, so a failure repeats.
class Rng {
 public:
  explicit Rng(uint64_t seed) : m_state(seed) {}
  uint64_t next() {
    uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }

 private:
  uint64_t m_state;
};

TEST(LoopAnswer, RandomAndMutatedInputsNeverCrash) {
  const std::vector<std::string> tokens = {
      "```", "```cuda\n", "~~~", "~~~~", "````", "\n", "<think>", "</think>", "extern \"C\"", "{", "}", "(", ")", ";",
      "kg_causal_forward", "__global__", "import torch\n", "def ", "@triton.jit\n", "\"", "'", "//", "/*", "*/", "R\"(",
      ")\"", "\r", "\t", "   ", "\\", "#include <", ">", std::string(1, '\0'), "\xff", "\xe2\x80", "cuda", "python"};
  const std::vector<std::string> seeds = {
      block("cuda", kKernel), "<think>x</think>" + block("cpp", kKernel) + block("bash", "ls\n"),
      "```markdown\n```cuda\n" + kKernel + "```\n```\n", block("python", "import triton\n"), "no code at all"};
  Rng rng(20261201);
  int accepted = 0;
  for (int n = 0; n < 4000; ++n) {
    std::string s = seeds[rng.below(seeds.size())];
    const size_t edits = 1 + rng.below(12);
    for (size_t e = 0; e < edits; ++e) {
      const size_t at = rng.below(s.size() + 1);
      switch (rng.below(5)) {
        case 0: s.insert(at, tokens[rng.below(tokens.size())]); break;
        case 1: s.erase(at, rng.below(16)); break;
        case 2:
          if (!s.empty()) s[rng.below(s.size())] = static_cast<char>(rng.next() & 0xff);
          break;
        case 3: s.insert(at, s.substr(rng.below(s.size() + 1), rng.below(64))); break;
        default: {
          std::string noise;
          for (size_t k = rng.below(40); k > 0; --k) noise += static_cast<char>(rng.next() & 0xff);
          s.insert(at, noise);
        }
      }
    }
    auto r = parse_answer(s, kEntry);
    if (r) {
      ++accepted;
      EXPECT_FALSE(r->source.empty());
      EXPECT_LE(r->source.size(), kMaxSourceBytes);
      EXPECT_GE(r->blocks, 1);
    } else {
      EXPECT_FALSE(r.error().message.empty());
      EXPECT_EQ(r.error().kind, Failure::Kind::Error);
    }
  }
  // Light mutations of good answers stay good often enough for the accepting paths to be hit.
  EXPECT_GT(accepted, 50);
}

TEST(LoopAnswer, HostileShapesStayFast) {
  // Many fence lines (no deep nesting), many mentions of the entry, many braces: linear work,
  // bounded memory.
  std::string fences;
  for (int i = 0; i < 200000; ++i) fences += "```a\n";
  EXPECT_FALSE(parse_answer(fences, kEntry));
  std::string mentions = "```cuda\n";
  for (int i = 0; i < 20000; ++i) mentions += "kg_causal_forward((((;\n";
  mentions += "```\n";
  EXPECT_FALSE(parse_answer(mentions, kEntry));
  // (accepted: parsing is not compiling; the entry's own declaration says extern "C")
  std::string braces = "```cuda\n" + std::string(200000, '{') + kKernel + "```\n";
  EXPECT_TRUE(parse_answer(braces, kEntry));
}

}  // namespace
}  // namespace kg::loop
