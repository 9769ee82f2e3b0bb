// glassbox: the adapter conformance kit. verify_adapter(model, tokens) checks every rung and
// optional member an adapter has (shapes, consistency, gradients against finite differences,
// attention) and returns a report that prints as a table (verify/report.hpp).
#pragma once

#include "glassbox/verify/adapter.hpp"
#include "glassbox/verify/report.hpp"
