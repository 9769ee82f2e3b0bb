// `glassbox attention` and `glassbox heads` arrive with the attention command line (issue 6); until then they say so.
#include "cli.hpp"
namespace glassbox::cli {
runner add_attention_command(CLI::App& app) {
  app.add_subcommand("attention", "(not yet available)");
  return [] { detail::fail("glassbox attention is not available yet"); };
}
runner add_heads_command(CLI::App& app) {
  app.add_subcommand("heads", "(not yet available)");
  return [] { detail::fail("glassbox heads is not available yet"); };
}
}  // namespace glassbox::cli
