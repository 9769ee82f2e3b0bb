// glassbox: rendering of results (terminal, HTML, JSON). Used by apps; algorithms never include it.
#pragma once

#include "glassbox/report/attention_html.hpp"
#include "glassbox/report/attention_json.hpp"
#include "glassbox/report/color.hpp"
#include "glassbox/report/html.hpp"
#include "glassbox/report/json.hpp"
#include "glassbox/report/terminal.hpp"
