// Tests of report/: the JSON schema round trip, the colour scale, terminal and HTML rendering.
#include <catch2/catch.hpp>

#include <cmath>
#include <glassbox/report.hpp>

#include "test_support.hpp"

using namespace glassbox;
using glassbox::test::what_contains;

namespace {

attribution_result sample_result() {
  attribution_result r;
  r.method = "integrated_gradients";
  r.token_ids = {5, 7, 2};
  r.scores = {0.5, -0.25, 0.0};
  r.embedding_scores = tensor2({3, 2});
  r.embedding_scores(0, 0) = 0.25f;
  r.embedding_scores(2, 1) = -1.0f;
  r.standard_errors = {0.1, 0.2, 0.3};
  r.target = target::contrast(4, 9, target_kind::probability, -2);
  r.target_value = 1.5;
  r.convergence_delta = 1e-4;
  r.model_evaluations = 51;
  r.options = {{"steps", std::int64_t{50}}, {"rule", std::string("gauss-legendre")}, {"adaptive", false},
               {"tolerance", 0.01}};
  return r;
}

}  // namespace

TEST_CASE("json: an attribution survives a round trip", "[report][json]") {
  const attribution_result r = sample_result();
  const auto j = report::to_json(r, {"the", "film", "<sep>"});
  CHECK(j["schema"] == "glassbox.attribution");
  CHECK(j["version"] == report::json_version);
  CHECK(j["tokens"][1] == "film");
  CHECK(j["baseline_value"].is_null());  // NaN is written as null
  CHECK(j["options"]["steps"] == 50);
  const attribution_result back = report::attribution_from_json(report::json::parse(j.dump()));
  CHECK(back.method == r.method);
  CHECK(back.token_ids == r.token_ids);
  CHECK(back.scores == r.scores);
  CHECK(back.standard_errors == r.standard_errors);
  CHECK(back.target == r.target);
  CHECK(back.target_value == r.target_value);
  CHECK(std::isnan(back.baseline_value));
  CHECK(back.convergence_delta == r.convergence_delta);
  CHECK(back.model_evaluations == 51);
  CHECK(back.embedding_scores == r.embedding_scores);
  REQUIRE(back.options.size() == 4);
  CHECK(std::get<std::string>(back.options[1].value) == "gauss-legendre");  // options keep their order
  CHECK(std::get<std::int64_t>(back.options[0].value) == 50);
  CHECK(j.begin().key() == "schema");
}

TEST_CASE("json: every target kind round trips", "[report][json]") {
  for (const target& t : {target::logit(3, 0), target::probability(1), target::log_probability(2, -3),
                          target::sequence_log_probability({4, 5, 6}), target::contrast(1, 2)})
    CHECK(report::target_from_json(report::to_json(t)) == t);
}

TEST_CASE("json: wrong documents are rejected clearly", "[report][json]") {
  auto j = report::to_json(sample_result());
  j["version"] = 99;
  REQUIRE_THROWS_MATCHES(report::attribution_from_json(j), io_error,
                         what_contains("glassbox.attribution version must be 1, got 99"));
  j["schema"] = "something.else";
  REQUIRE_THROWS_MATCHES(report::attribution_from_json(j), io_error, what_contains("expected a glassbox.attribution"));
  auto k = report::to_json(sample_result());
  k["scores"].push_back(1.0);
  REQUIRE_THROWS_MATCHES(report::attribution_from_json(k), io_error, what_contains("4 scores for 3 tokens"));
  REQUIRE_THROWS_MATCHES(report::to_json(sample_result(), {"only-one"}), shape_error,
                         what_contains("1 token strings for 3 token ids"));
}

TEST_CASE("colour: the diverging scale is white at zero and saturates at the scale", "[report]") {
  const auto zero = report::diverging_color(0.0, 1.0);
  CHECK((zero.r == 255 && zero.g == 255 && zero.b == 255));
  const auto pos = report::diverging_color(2.0, 1.0), neg = report::diverging_color(-1.0, 1.0);
  CHECK((pos.r == 26 && pos.g == 152 && pos.b == 80));
  CHECK((neg.r == 215 && neg.g == 48 && neg.b == 39));
  const auto half = report::diverging_color(0.5, 1.0);
  CHECK(half.g == 204);  // 255 + 0.5 (152 - 255) = 203.5, rounded half away from zero
  CHECK(report::needs_light_text(report::sequential_color(1.0)));
  CHECK(!report::needs_light_text(zero));
}

TEST_CASE("terminal and HTML views show every token and escape text", "[report]") {
  attribution_result r = sample_result();
  const std::vector<std::string> words{"<b>", "a&b", "\"q\""};
  const std::string plain = report::terminal_heatmap(r, words, {.color = false, .top = 2, .width = 80});
  CHECK(plain.find("<b>[+0.5]") != std::string::npos);
  CHECK(plain.find("a&b[-0.25]") != std::string::npos);
  CHECK(plain.find("delta = 0.0001") != std::string::npos);
  const std::string colored = report::terminal_heatmap(r, words);
  CHECK(colored.find("\x1b[48;2;26;152;80m") != std::string::npos);  // the largest score is fully green
  const std::string page = report::attribution_html(r, words);
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(page.find("&lt;b&gt;") != std::string::npos);
  CHECK(page.find("a&amp;b") != std::string::npos);
  CHECK(page.find("&quot;q&quot;") != std::string::npos);
  CHECK(page.find("<b>") == std::string::npos);
  CHECK(page.find("http") == std::string::npos);  // self-contained: no external assets
}
