#include <cstdio>

int main() {
  std::puts("kernelgen");
  return 0;
}
