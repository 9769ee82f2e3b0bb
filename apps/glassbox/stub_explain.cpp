// `glassbox explain` arrives with the attribution command line (issue 5); until then it says so.
#include "cli.hpp"
namespace glassbox::cli {
runner add_explain_command(CLI::App& app) {
  app.add_subcommand("explain", "(not yet available)");
  return [] { detail::fail("glassbox explain is not available yet"); };
}
}  // namespace glassbox::cli
