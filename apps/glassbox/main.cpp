// glassbox: explain transformer language models from the command line.
//
//   glassbox info | predict | generate-data | train | explain | attention | heads | activations | probe | tcav |
//            lens | tuned-lens | steer | sae | verify | influence | evaluate | methods | tokenize |
//            patch | dla | neurons | scores | counterfactual   (--help on each)
#include <exception>
#include <iostream>
#include <map>

#include "circuits_commands.hpp"
#include "cli.hpp"
#include "counterfactual_command.hpp"
#include "evaluate_command.hpp"
#include "probing_commands.hpp"
#include "representation_commands.hpp"
#include "sae_commands.hpp"
#include "scores_command.hpp"
#include "glassbox/core/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"glassbox: explain transformer language models (attribution, attention, ground truth).\n"
               "Without --model, commands use the bundled review-sentiment GPT-2 (models/reviews).",
               "glassbox"};
  app.set_version_flag("--version", std::string(glassbox::version));
  app.require_subcommand(1);
  std::map<CLI::App*, glassbox::cli::runner> runners;
  auto add = [&](glassbox::cli::runner (*adder)(CLI::App&)) {
    const auto before = app.get_subcommands({}).size();
    auto run = adder(app);
    runners[app.get_subcommands({}).at(before)] = std::move(run);
  };
  add(glassbox::cli::add_info_command);
  add(glassbox::cli::add_predict_command);
  add(glassbox::cli::add_generate_data_command);
  add(glassbox::cli::add_train_command);
  add(glassbox::cli::add_explain_command);
  add(glassbox::cli::add_attention_command);
  add(glassbox::cli::add_heads_command);
  add(glassbox::cli::add_activations_command);
  add(glassbox::cli::add_probe_command);
  add(glassbox::cli::add_tcav_command);
  add(glassbox::cli::add_lens_command);
  add(glassbox::cli::add_tuned_lens_command);
  add(glassbox::cli::add_steer_command);
  add(glassbox::cli::add_sae_command);
  add(glassbox::cli::add_verify_command);
  add(glassbox::cli::add_influence_command);
  add(glassbox::cli::add_evaluate_command);
  add(glassbox::cli::add_methods_command);
  add(glassbox::cli::add_tokenize_command);
  add(glassbox::cli::add_patch_command);
  add(glassbox::cli::add_dla_command);
  add(glassbox::cli::add_neurons_command);
  add(glassbox::cli::add_scores_command);
  add(glassbox::cli::add_counterfactual_command);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "glassbox: error: " << e.what() << "\n";
    return 2;
  }
  try {
    for (auto* sub : app.get_subcommands())
      if (const auto it = runners.find(sub); it != runners.end()) it->second();
  } catch (const std::exception& e) {
    std::cerr << "glassbox: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
