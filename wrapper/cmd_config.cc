// kernelgen config show
#include <iostream>

#include "commands.h"
#include "config/config.h"

namespace kg::cli {

int run_config(const GlobalOptions& global, const ConfigOptions& opts) {
  if (opts.json) {
    std::cout << global.config->show_json();
  } else {
    std::cout << global.config->show();
  }
  return kExitOk;
}

}  // namespace kg::cli
